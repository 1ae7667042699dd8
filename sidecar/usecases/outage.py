"""What a decision is while storage is unreachable: known contacts are served from the local
record in every failure mode; new ones follow ``MAC_FAILURE_MODE``, journaled when it allows
them."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

from sidecar.domain.cache import LruCache
from sidecar.domain.clock import Clock, to_ms
from sidecar.domain.contact import KeyedContact, key_text
from sidecar.domain.decision import Decision, Reason
from sidecar.domain.errors import StorageError
from sidecar.domain.ports import AdmissionJournal, JournalEntry
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.periods import Periods

# Journaled contacts remembered at most, so that a contact seen again in the same outage is not
# written twice; past this the least recently seen are forgotten (a second entry is harmless:
# replay is idempotent).
_JOURNALED_MAX = 100_000


class OutageAnswers:
    """Decides contacts without storage.

    - A contact the record ``known`` holds in the workspace's current period is allowed with
      its recorded reason (``ALREADY_ACTIVE``, or ``EXEMPT``) and ``from_local_record``.
    - A new contact: ``error`` raises the ``StorageError``; ``deny`` denies it with
      ``BACKEND_UNAVAILABLE``; ``allow`` allows it with ``BACKEND_UNAVAILABLE`` once the
      journal holds it on disk, and denies it like ``deny`` when the journal is full or
      cannot be written, or when the contact could not be keyed. A dry run (Check) writes
      nothing to the journal.

    :param journal: required with ``allow``.
    """

    def __init__(
        self,
        failure_mode: str,
        known: KnownContacts,
        periods: Periods,
        clock: Clock,
        journal: AdmissionJournal | None = None,
    ) -> None:
        if failure_mode == "allow" and journal is None:
            raise ValueError("failure mode allow needs a journal")
        self.failure_mode = failure_mode
        self.known = known
        self._periods = periods
        self._clock = clock
        self._journal = journal
        # (workspace, period key, first key) of contacts journaled since the last seal
        self._journaled: LruCache[tuple[str, str, bytes], asyncio.Future[bool]] = LruCache(
            _JOURNALED_MAX
        )

    def forget_journaled(self) -> None:
        """Start the set of contacts journaled afresh (the journal was sealed for replay)."""
        self._journaled.clear()

    async def one(
        self,
        exc: StorageError,
        workspace_id: str,
        contact: KeyedContact | None,
        dry_run: bool,
        occurred_at: datetime | None = None,
    ) -> Decision:
        """The answer for one contact (``None``: it could not be keyed)."""
        return (await self.many(exc, workspace_id, [contact], dry_run, occurred_at))[0]

    async def many(
        self,
        exc: StorageError,
        workspace_id: str,
        contacts: Sequence[KeyedContact | None],
        dry_run: bool,
        occurred_at: datetime | None = None,
    ) -> list[Decision]:
        """The answers for the contacts of one request, in order. With ``error``, any new
        contact fails the whole request.

        :param occurred_at: the contacts' event time (``None``: now): they are looked up in
            the record, and journaled, in the period of that instant, so a replay counts
            them there.
        :raise StorageError: ``exc``, in ``error`` mode unless every contact is known.
        """
        if occurred_at is None:
            at = self._clock.now()
            period_key = self._periods.current(workspace_id, at).period.key
        else:
            at = occurred_at
            period_key = self._periods.at(workspace_id, at).period.key
        answers: list[Decision | None] = []
        new: list[int] = []
        for i, contact in enumerate(contacts):
            known = (
                self.known.lookup_contact(workspace_id, period_key, contact)
                if contact is not None
                else None
            )
            if known is None:
                answers.append(None)
                new.append(i)
            else:
                answers.append(
                    Decision(
                        allowed=True,
                        reason=known.reason,
                        contact_key=key_text(known.identity),
                        usage=None,
                        from_local_record=True,
                    )
                )
        if new and self.failure_mode == "error":
            raise exc
        if new:
            allowed = await self._admit(workspace_id, period_key, to_ms(at), contacts, new, dry_run)
            for i, ok in zip(new, allowed, strict=True):
                contact = contacts[i]
                answers[i] = Decision(
                    allowed=ok,
                    reason=Reason.BACKEND_UNAVAILABLE,
                    contact_key=key_text(contact.first) if contact is not None else "",
                    usage=None,
                )
        return [a for a in answers if a is not None]

    async def _admit(
        self,
        workspace_id: str,
        period_key: str,
        at_ms: int,
        contacts: Sequence[KeyedContact | None],
        new: list[int],
        dry_run: bool,
    ) -> list[bool]:
        """Whether each new contact is allowed; journal those allowed, unless ``dry_run``."""
        journal = self._journal
        if self.failure_mode != "allow" or journal is None:
            return [False] * len(new)
        if dry_run:
            return [contacts[i] is not None for i in new]
        waits: list[asyncio.Future[bool] | bool] = []
        for i in new:
            contact = contacts[i]
            if contact is None:
                waits.append(False)
                continue
            seen = (workspace_id, period_key, contact.first)
            pending = self._journaled.get(seen)
            if pending is not None and not (pending.done() and not pending.result()):
                waits.append(pending)
                continue
            if not journal.has_room():
                waits.append(False)
                continue
            written = journal.append(JournalEntry(workspace_id, at_ms, contact))
            self._journaled.put(seen, written)
            waits.append(written)
        return [w if isinstance(w, bool) else await asyncio.shield(w) for w in waits]

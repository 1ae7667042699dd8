"""The warm path: a contact the record knows is counted this period, answered without storage
while its workspace's last reply from storage is fresh."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

from sidecar.domain.addresses import is_national
from sidecar.domain.cache import LruCache
from sidecar.domain.clock import Clock
from sidecar.domain.contact import ContactFields, key_text
from sidecar.domain.decision import Decision, Usage
from sidecar.domain.errors import InvalidArgument
from sidecar.usecases.contacts import ContactReader
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.periods import Periods

# workspaces whose last reply from storage is remembered
LAST_REPLIES_MAX = 100_000


class LastReply(NamedTuple):
    """A workspace's last reply from storage, as the warm path answers from it.

    One per workspace, holding a ``Usage``: tracked by the garbage collector whatever its
    form, and bounded by ``LAST_REPLIES_MAX``.

    :param until: the instant it stops being fresh: ``warm_seconds`` after the reply, and
        never beyond the end of the period it was in.
    :param usage: the workspace's usage it gave, which warm answers carry.
    :param identity_version: the workspace's identity version it reported (when that moves,
        a merge or an exemption changed who is who).
    """

    until: datetime
    usage: Usage
    identity_version: int


class WarmPath:
    """Answers the contacts the record of known contacts holds as counted (or exempt) in the
    period of their workspace's last reply from storage, without awaiting anything, while
    that reply is fresh.

    Every decision from storage is taught to it (``learn``); a workspace whose identity
    version moved has its known contacts forgotten.

    :param known: the record of contacts counted this period (capacity 0: the path is off).
    :param contacts: keys the contacts asked about, as the decisions key them.
    :param periods: each workspace's default phone region.
    :param clock: the injected time source.
    :param seconds: how long a reply stays fresh (``MAC_WARM_SECONDS``; 0: the path is off).
    """

    def __init__(
        self,
        known: KnownContacts,
        contacts: ContactReader,
        periods: Periods,
        clock: Clock,
        seconds: float = 0.0,
    ) -> None:
        self._known = known
        self._contacts = contacts
        self._periods = periods
        self._clock = clock
        self._fresh_for = timedelta(seconds=seconds) if known.capacity else timedelta()
        # kept while the path is off too: the identity version also keeps the record right
        # for the answers given while storage is unreachable
        self._last: LruCache[str, LastReply] = LruCache(LAST_REPLIES_MAX)

    def answer(
        self, workspace_id: str, contact: ContactFields, occurred_at: datetime | None = None
    ) -> Decision | None:
        """``ALREADY_ACTIVE`` or ``EXEMPT`` for a contact the record knows in the period of the
        workspace's last reply, with that reply's usage and ``from_local_record``; ``None``
        to ask storage. Awaits nothing.

        ``None`` for a workspace without a fresh reply, a contact that cannot be keyed in the
        workspace's default region as this process knows it (an invalid one, a national
        number without a region), and one with a key the record does not hold under the
        same identity (a key storage has not linked yet needs storage to link it); and for
        an event time (``occurred_at``) outside that reply's period or in the future: its
        period, or its refusal, is storage's to decide.
        """
        if not self._fresh_for:
            return None
        # looked at without making it recent: the workspace's replies do
        last = self._last.peek(workspace_id)
        if last is None:
            return None
        now = self._clock.now()
        if now >= last.until:
            return None  # asked before keying: a stale workspace costs no more
        if occurred_at is not None and not last.usage.period.start <= occurred_at <= now:
            return None
        phone = contact.phone
        # a national number is read in the workspace's region; no other contact needs it
        region = (
            self._periods.basis(workspace_id).default_region if phone and is_national(phone) else ""
        )
        try:
            keyed = self._contacts.one(contact, "contact", region)
        except InvalidArgument:
            return None
        usage = last.usage
        known = self._known.lookup_all(workspace_id, usage.period.key, keyed)
        if known is None:
            return None
        return Decision(
            allowed=True,
            reason=known.reason,
            contact_key=key_text(known.identity),
            usage=usage,
            from_local_record=True,
        )

    def learn(self, workspace_id: str, now: datetime, usage: Usage, identity_version: int) -> None:
        """Keep the workspace's reply from storage at ``now``; forget its known contacts when
        its identity version moved since the reply before."""
        last = self._last.peek(workspace_id)
        known = self._known
        if last is not None and last.identity_version != identity_version and known.capacity:
            known.forget(workspace_id)
        until = min(now + self._fresh_for, usage.period.end)
        self._last.put(workspace_id, LastReply(until, usage, identity_version))

    def forget(self, workspace_id: str) -> None:
        """Answer the workspace's next decisions from storage: this process changed its
        subscription, a merge or an exemption (other processes learn it from their next
        reply, within ``seconds``)."""
        self._last.pop(workspace_id)
        if self._known.capacity:
            self._known.forget(workspace_id)

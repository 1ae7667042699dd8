"""Forgetting a person (Admin.Forget), and the links sweep that bounds the links: the links of
identities not counted for ``MAC_RETENTION_PERIODS`` + 1 periods are deleted, off the
decision path, by the process holding the closing sweep's lease."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

from sidecar.domain.audit import AuditContext
from sidecar.domain.cache import LruCache
from sidecar.domain.clock import Clock, from_ms, to_ms
from sidecar.domain.closing_ports import CloseStore
from sidecar.domain.contact import ContactFields, validate_workspace_id
from sidecar.domain.forget_ports import (
    ForgetRequest,
    ForgetStore,
    Forgotten,
    LinkExpiryStore,
    period_ordinal,
)
from sidecar.domain.period import period_at
from sidecar.usecases.contacts import ContactReader
from sidecar.usecases.enforcer import Enforcer
from sidecar.usecases.periods import Periods

# Workspaces whose links were swept this period, remembered by one process.
SWEPT_MAX = 100_000
# The links sweep renews the closing sweep's lease at most this often (its lease lasts 10 s
# at least): once per page of every workspace would double the sweep's round trips.
RENEW_EVERY_S = 2.0


class Forgetting:
    """Admin.Forget.

    :param retention_periods: past periods whose members are kept (``MAC_RETENTION_PERIODS``).
    :param on_history: told what became of the append-only file's rewrite after a Forget
        (``started``, ``off``, or why it was refused).
    """

    def __init__(
        self,
        store: ForgetStore,
        contacts: ContactReader,
        periods: Periods,
        enforcer: Enforcer,
        clock: Clock,
        *,
        retention_periods: int,
        on_history: Callable[[str, str], None] | None = None,
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._periods = periods
        self._enforcer = enforcer
        self._clock = clock
        self._retention = retention_periods
        self._on_history = on_history

    async def forget(self, workspace_id: str, contact: ContactFields, *, admin: str) -> Forgotten:
        """Erase the person ``contact`` resolves to (as a decision would now): its links,
        its exemption, its conflict flags, and its place in every period kept, where an
        anonymous member stays counted. Idempotent: a second call finds nothing. Audited as
        made by ``admin``, in the same step."""
        validate_workspace_id(workspace_id)
        await self._periods.refresh(workspace_id)
        region = self._periods.basis(workspace_id).default_region
        keyed = self._contacts.one(contact, "contact", region)
        now = self._clock.now()
        current = self._periods.current(workspace_id, now).period.key
        oldest = period_ordinal(current) - self._retention - 1
        kept = [
            key
            for key in await self._store.counted_periods(workspace_id)
            if key != current and period_ordinal(key) >= oldest
        ]
        if not await self._store.indexed(workspace_id):
            await self._store.backfill(workspace_id, period_ordinal(current))
        forgotten = await self._store.forget(
            ForgetRequest(
                workspace_id,
                keyed,
                (current, *sorted(kept, reverse=True)),
                AuditContext(admin, "Forget", to_ms(now)),
            )
        )
        # this process's record answers for it no more; the others' stop at their next reply
        # from storage (the identity version moved)
        self._enforcer.forget(workspace_id)
        if forgotten.forgotten:
            outcome = await self._store.rewrite_history(workspace_id)
            if self._on_history is not None:
                self._on_history(workspace_id, outcome)
        return forgotten


class LinkExpiry:
    """The links sweep: once per period and workspace, the workspace's links written before
    the identity index existed are filed in it (once), and the links of identities not
    counted for ``retention_periods`` + 1 periods are deleted.

    Run by the closing sweep after each of its steps (``PeriodClosing(after_step=...)``),
    under its lease.
    """

    def __init__(
        self,
        store: LinkExpiryStore,
        periods: CloseStore,
        clock: Clock,
        *,
        retention_periods: int,
        on_error: Callable[[BaseException], None] | None = None,
        cache_max: int = SWEPT_MAX,
    ) -> None:
        self._store = store
        self._periods = periods
        self._clock = clock
        self._retention = retention_periods
        self._on_error = on_error
        # workspace -> the end of the period its links were last swept in
        self._swept: LruCache[str, datetime] = LruCache(cache_max)
        self.expired = 0  # identities whose links this process deleted

    async def after_step(
        self, workspace_ids: Sequence[str], renew: Callable[[], Awaitable[bool]] | None = None
    ) -> None:
        """``sweep``, its failure reported rather than raised: the closing sweep goes on."""
        try:
            await self.sweep(workspace_ids, renew)
        except Exception as exc:  # the next sweep tries again
            if self._on_error is not None:
                self._on_error(exc)

    async def sweep(
        self, workspace_ids: Sequence[str], renew: Callable[[], Awaitable[bool]] | None = None
    ) -> int:
        """Sweep the links of those of ``workspace_ids`` not swept this period; how many
        identities lost their links."""
        now = self._clock.now()
        due = []
        for workspace_id in dict.fromkeys(workspace_ids):
            until = self._swept.get(workspace_id)
            if until is None or until <= now:
                due.append(workspace_id)
        expired = 0
        renew = _throttled(renew)
        for found in await self._periods.workspace_periods(due):
            basis = found.basis
            starts_at = from_ms(basis.starts_at_ms) if basis.starts_at_ms else None
            period = period_at(now, ZoneInfo(basis.timezone), starts_at)
            ordinal = period_ordinal(period.key)
            workspace_id = found.workspace_id
            if not await self._store.indexed(workspace_id) and not await self._store.backfill(
                workspace_id, ordinal, renew
            ):
                break
            expired += await self._store.expire_links(
                workspace_id, ordinal - self._retention - 1, renew
            )
            self._swept.put(workspace_id, period.end)
        self.expired += expired
        return expired


def _throttled(
    renew: Callable[[], Awaitable[bool]] | None,
) -> Callable[[], Awaitable[bool]] | None:
    """``renew``, asked again only ``RENEW_EVERY_S`` after its last yes (a no is final)."""
    if renew is None:
        return None
    renewed_at = -RENEW_EVERY_S
    held = True

    async def throttled() -> bool:
        nonlocal renewed_at, held
        if held and time.monotonic() - renewed_at >= RENEW_EVERY_S:
            held = await renew()
            renewed_at = time.monotonic()
        return held

    return throttled

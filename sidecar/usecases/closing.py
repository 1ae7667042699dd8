"""Closing periods: a period closes ``MAC_LATENESS_SECONDS`` after its end, and the first
decision or sweep after that closes it in storage (its statement written, its PERIOD_CLOSED
event recorded, exactly once: ``close.lua`` sets the mark in the same step).

A decision tells ``note_decision``; that is a look-up in the common case, and a close in the
background when the workspace's previous period is due and this process has not seen it
closed. A sweep every ``MAC_CLOSE_SWEEP_SECONDS`` closes what no decision came for: one
process at a time (a lease), over every workspace in steps, skipping those it knows have
nothing due before their next close instant.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sidecar.domain.cache import LruCache
from sidecar.domain.clock import Clock, from_ms, to_ms
from sidecar.domain.closing_ports import CloseReply, CloseRequest, CloseStore, WorkspacePeriods
from sidecar.domain.decision import Policy
from sidecar.domain.errors import StorageError
from sidecar.domain.period import BillingPeriod
from sidecar.domain.statement import (
    DuePeriods,
    Statement,
    closes_at,
    due_periods,
    period_of_key,
)

# Workspaces read and closed in one round trip (per node).
BATCH = 500
# Workspaces whose next close instant is remembered.
CACHE_MAX = 100_000
# A workspace is read again at least this often, whatever its next close instant said (a
# subscription that moved its start or time zone may have moved a period's end).
RECHECK = timedelta(hours=1)
# The sweep's lease lasts this many sweep intervals (10 s at least), renewed every step: a
# holder that died is replaced within one lease.
LEASE_SWEEPS = 3
LEASE_MIN_MS = 10_000


# Run after each step of the sweep with the step's workspaces and the lease's renewal (the
# links sweep, usecases/forgetting.py).
AfterStep = Callable[[Sequence[str], Callable[[], Awaitable[bool]] | None], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did: workspaces scanned (a workspace may be scanned twice), read from
    storage (the others had nothing due), and periods it closed."""

    scanned: int = 0
    read: int = 0
    closed: int = 0


class PeriodClosing:
    """Closes each workspace's periods once their lateness has passed.

    :param store: where periods are read and closed.
    :param clock: the time source (a test's manual clock moves the close instants too).
    :param policy: the limit and plan a statement records when its count has none, and the
        events stream's cap.
    :param lateness_s: ``MAC_LATENESS_SECONDS``.
    :param sweep_s: ``MAC_CLOSE_SWEEP_SECONDS``, seconds between sweeps.
    :param owner: this process's name, for the sweep's lease.
    :param on_error: told of a background close or a sweep that failed.
    :param after_step: awaited after each step of a sweep with its workspaces.
    """

    def __init__(
        self,
        store: CloseStore,
        clock: Clock,
        policy: Policy,
        *,
        lateness_s: int,
        sweep_s: float,
        owner: str,
        on_error: Callable[[BaseException], None] | None = None,
        after_step: AfterStep | None = None,
        batch: int = BATCH,
        cache_max: int = CACHE_MAX,
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy
        self.lateness = timedelta(seconds=lateness_s)
        self._sweep_s = sweep_s
        self._owner = owner
        self._on_error = on_error
        self._after_step = after_step
        self._batch = batch
        self.lease_ms = max(LEASE_MIN_MS, int(LEASE_SWEEPS * sweep_s * 1000))
        # workspace -> nothing of it is due before this instant
        self._next_due: LruCache[str, datetime] = LruCache(cache_max)
        self._pending: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sweeps_run = 0  # by this process, holding the lease

    # -- decisions ---------------------------------------------------------------------------

    def note_decision(self, workspace_id: str, period: BillingPeriod, now: datetime) -> None:
        """A decision was made in ``period`` at ``now``: when the workspace's previous period
        is due to close and this process has not seen it closed, close it in the background.
        Never waits; a look-up in the common case."""
        next_due = self._next_due.get(workspace_id)
        if next_due is not None and now < next_due:
            return
        if workspace_id in self._pending:
            return
        if next_due is None and now < period.start + self.lateness:
            return  # the period before is still open; older ones are the sweep's
        self._pending.add(workspace_id)
        task = asyncio.create_task(self._close_in_background(workspace_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close_in_background(self, workspace_id: str) -> None:
        try:
            await self.close_due([workspace_id])
        except Exception as exc:  # a decision's background close never fails the decision
            self._report(exc)
        finally:
            self._pending.discard(workspace_id)

    @property
    def in_flight(self) -> int:
        """Background closes started by decisions and not finished."""
        return len(self._tasks)

    async def settled(self) -> None:
        """Wait for the background closes started so far (for a clean stop, and tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- closing -----------------------------------------------------------------------------

    async def close_due(self, workspace_ids: Sequence[str]) -> int:
        """Close every period of the workspaces that is due now; how many this call closed
        (the others were closed before, or by another process meanwhile)."""
        now = self._clock.now()
        found = await self._store.workspace_periods(workspace_ids)
        requests: list[CloseRequest] = []
        for periods in found:
            due = self._due(periods, now)
            self._next_due.put(periods.workspace_id, min(due.next_due, now + RECHECK))
            requests.extend(self._request(periods.workspace_id, p, now) for p in due.due)
        replies = await self._store.close_periods(requests)
        return sum(1 for reply in replies if reply.closed_now)

    async def closed_at(self, workspace_id: str, period: BillingPeriod) -> datetime | None:
        """When ``period`` closed; ``None`` while it is open. A period due to close and not
        closed yet is closed now (with its statement and event, when it has a count); one
        without a count is closed by its close instant alone."""
        now = self._clock.now()
        instant = closes_at(period, self.lateness)
        if now < instant:
            return None
        closed_ms = await self._store.period_closed_at(workspace_id, period.key)
        if not closed_ms:
            await self.close_due([workspace_id])
            closed_ms = await self._store.period_closed_at(workspace_id, period.key)
        return from_ms(closed_ms) if closed_ms else instant

    async def statements(self, workspace_ids: Sequence[str], name: str) -> list[Statement]:
        """The statements of the month ``name`` of each workspace (none, one, or two when a
        subscription started inside the month), each period closed first when due; ordered
        by workspace and period start. A period not due yet has none."""
        now = self._clock.now()
        found = await self._store.workspace_periods(workspace_ids)
        requests: list[CloseRequest] = []
        for periods in found:
            zone, starts_at = _basis(periods)
            for key in periods.counted:
                if key != name and not key.startswith(name + "@"):
                    continue
                try:
                    period = period_of_key(key, zone, starts_at)
                except ValueError:
                    continue
                if closes_at(period, self.lateness) <= now:
                    requests.append(self._request(periods.workspace_id, period, now))
        replies: list[CloseReply] = await self._store.close_periods(requests)
        found_statements = [r.statement for r in replies if r.statement is not None]
        return sorted(found_statements, key=lambda s: (s.workspace_id, s.period.start))

    def _due(self, periods: WorkspacePeriods, now: datetime) -> DuePeriods:
        zone, starts_at = _basis(periods)
        return due_periods(periods.counted, periods.closed, now, self.lateness, zone, starts_at)

    def _request(self, workspace_id: str, period: BillingPeriod, now: datetime) -> CloseRequest:
        policy = self._policy
        return CloseRequest(
            workspace_id, period, to_ms(now), policy.limit, policy.plan, policy.events_max
        )

    # -- the sweep ---------------------------------------------------------------------------

    async def sweep(self, renew: Callable[[], Awaitable[bool]] | None = None) -> SweepReport:
        """Close what is due in every workspace: the registry in steps of ``batch``, each
        step's workspaces read and closed in one round trip each, those known to have
        nothing due skipped.

        :param renew: awaited before each step; a false answer stops the sweep (the lease
            was lost).
        """
        scanned = read = closed = 0
        cursor = 0
        while True:
            if renew is not None and not await renew():
                break
            cursor, found = await self._store.scan_workspaces(cursor, self._batch)
            scanned += len(found)
            now = self._clock.now()
            stale = []
            for workspace_id in dict.fromkeys(found):
                next_due = self._next_due.get(workspace_id)
                if next_due is None or next_due <= now:
                    stale.append(workspace_id)
            if stale:
                read += len(stale)
                closed += await self.close_due(stale)
            if self._after_step is not None and found:
                await self._after_step(found, renew)
            if cursor == 0:
                break
        return SweepReport(scanned, read, closed)

    def start(self) -> None:
        """Sweep every ``sweep_s`` seconds in the background while holding the lease."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop sweeping (a sweep under way stops after its step), give the lease up, and
        wait for the background closes."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.settled()

    async def _hold(self) -> bool:
        return not self._stopping.is_set() and await self._store.hold_lease(
            self._owner, self.lease_ms
        )

    async def _anything_to_sweep(self) -> bool:
        """Whether any workspace ever decided: a Redis no workspace used is left as it was
        (no lease is taken)."""
        cursor, found = await self._store.scan_workspaces(0, 1)
        return bool(found) or cursor != 0

    async def _run(self) -> None:
        held = False
        while not self._stopping.is_set():
            try:
                held = held or await self._anything_to_sweep()
                held = held and await self._hold()
                if held:
                    self.sweeps_run += 1
                    await self.sweep(self._hold)
            except StorageError as exc:
                self._report(exc)
            except Exception as exc:  # the sweep goes on at its next interval
                self._report(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._sweep_s)
        if held:
            with contextlib.suppress(StorageError):
                await self._store.release_lease(self._owner)

    def _report(self, error: BaseException) -> None:
        if self._on_error is not None:
            self._on_error(error)


def _basis(periods: WorkspacePeriods) -> tuple[ZoneInfo, datetime | None]:
    basis = periods.basis
    return ZoneInfo(basis.timezone), from_ms(basis.starts_at_ms) if basis.starts_at_ms else None

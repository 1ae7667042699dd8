"""Counting what an outage let in: the journal's entries decided again by the decision script,
each under the period of the instant it was allowed, once storage answers again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import groupby

from sidecar.domain.clock import Clock, from_ms
from sidecar.domain.decision import DENYING, Policy, Reason
from sidecar.domain.errors import PeriodClosed
from sidecar.domain.ports import (
    AdmissionJournal,
    DecisionStore,
    JournalEntry,
    JournalSegment,
    ReplayedWorkspace,
)
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.outage import OutageAnswers
from sidecar.usecases.periods import PeriodDecisions, Periods

# Contacts per decision script call: a replay shares Redis with live decisions.
REPLAY_CHUNK = 500
_COUNTED = (Reason.ADMITTED, Reason.TRIAL_STARTED)


@dataclass(slots=True)
class _Tally:
    replayed: int = 0
    counted: int = 0
    overshoot: int = 0
    closed: int = 0
    closed_periods: dict[str, None] = field(default_factory=dict)  # in order, once each


class JournalReplay:
    """Replays the journal through ``DecisionStore.decide``.

    Entries of one workspace allowed in the same second are decided in one call (in chunks of
    ``REPLAY_CHUNK``), with that second's first instant as ``now_ms`` and its period and date
    computed from the workspace's subscription as it stands. Replaying is idempotent: a
    contact already counted in its period answers ``ALREADY_ACTIVE`` and changes nothing, so
    a replay cut short and run again counts every contact once. A contact the script refuses
    as over the limit was served during the outage but stays uncounted: it is reported as
    overshoot. An entry whose period is no longer the current one is decided as a late event
    (at the limit and plan recorded with that period's count); one whose period was closed
    meanwhile (``PeriodClosed``: its count is final) is dropped uncounted and reported, never
    retried. A segment is settled (removed) only after every entry in it was decided or
    dropped.

    :param outage: told to forget what it journaled when the journal is sealed.
    :param known: filled with the contacts the replay finds counted.
    :param ready: whether storage answers now (the health probe's finding); the background
        replay waits for it, so an outage does not seal a segment every ``interval``.
    :param clock: tells whether an entry's period is still the current one (``None``: every
        entry is decided as in the current period).
    """

    def __init__(
        self,
        store: DecisionStore,
        journal: AdmissionJournal,
        periods: Periods,
        policy: Policy,
        known: KnownContacts,
        outage: OutageAnswers | None = None,
        ready: Callable[[], bool] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self._clock = clock
        self._journal = journal
        self._periods = periods
        self._decisions = PeriodDecisions(store.decide, periods, policy)
        self._known = known
        self._outage = outage
        self._ready = ready
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def replay(self) -> list[ReplayedWorkspace]:
        """Claim every segment ready for replay and replay it; a segment whose replay fails
        (storage unreachable again) is kept for the next attempt.

        :return: what the replay did, per workspace and segment.
        """
        async with self._lock:
            segments = await self._journal.claim()
            if self._outage is not None:
                self._outage.forget_journaled()
            done: list[ReplayedWorkspace] = []
            for i, segment in enumerate(segments):
                try:
                    report = await self._segment(segment)
                except asyncio.CancelledError as exc:
                    for rest in segments[i:]:
                        self._journal.release(rest, exc)
                    raise
                except Exception as exc:  # storage away again, or a bug: keep what is left
                    for rest in segments[i:]:
                        self._journal.release(rest, exc)
                    break
                await self._journal.settle(segment, report)
                done.extend(report)
            return done

    def start(self, interval: float) -> None:
        """Replay every ``interval`` seconds in the background, from now on."""
        self._task = asyncio.create_task(self._loop(interval))

    async def stop(self) -> None:
        """Stop the background replay (a segment being replayed is kept for later)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self, interval: float) -> None:
        while True:
            if self._ready is None or self._ready():
                await self.replay()
            await asyncio.sleep(interval)

    async def _segment(self, segment: JournalSegment) -> list[ReplayedWorkspace]:
        tallies: dict[str, _Tally] = {}
        refreshed: set[str] = set()

        def group(entry: JournalEntry) -> tuple[str, int]:
            return entry.workspace_id, entry.at_ms // 1000

        for (workspace_id, _), entries in groupby(segment.entries, key=group):
            if workspace_id not in refreshed:
                await self._periods.refresh(workspace_id)
                refreshed.add(workspace_id)
            batch = list(entries)
            tally = tallies.setdefault(workspace_id, _Tally())
            for start in range(0, len(batch), REPLAY_CHUNK):
                chunk = batch[start : start + REPLAY_CHUNK]
                contacts = [e.contact for e in chunk]
                at_ms = chunk[0].at_ms
                try:
                    reply, current = await self._decisions.decide(
                        workspace_id,
                        contacts,
                        from_ms(at_ms),
                        at_ms,
                        now=self._clock.now() if self._clock is not None else None,
                    )
                except PeriodClosed as closed:
                    tally.closed += len(chunk)
                    tally.closed_periods[closed.period_name] = None
                    continue
                period_key = current.period.key
                tally.replayed += len(chunk)
                for contact, outcome in zip(contacts, reply.outcomes, strict=True):
                    if outcome.reason in _COUNTED:
                        tally.counted += 1
                    elif outcome.reason in DENYING and not outcome.shadowed:
                        tally.overshoot += 1
                    self._known.remember_outcome(
                        workspace_id, period_key, contact, outcome, dry_run=False
                    )
        return [
            ReplayedWorkspace(
                w, t.replayed, t.counted, t.overshoot, t.closed, tuple(t.closed_periods)
            )
            for w, t in tallies.items()
        ]

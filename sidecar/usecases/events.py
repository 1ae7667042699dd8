"""Watching the notification events of one workspace or of all, in id order."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, Awaitable, Callable

from sidecar.domain.contact import validate_workspace_id
from sidecar.domain.decision import Event
from sidecar.domain.errors import InvalidArgument
from sidecar.domain.ports import EventStore, RecordedEventReads
from sidecar.usecases.event_hub import QUEUE_MAX, EventHub, Subscriber, event_position, in_order

__all__ = ["RESUME_OVERLAP_MS", "WATCH_COUNT", "EventWatch", "in_order"]

_EVENT_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
WATCH_COUNT = 100
RESUME_OVERLAP_MS = 5000
# History reads of watches catching up, at once per process: each holds a pooled connection
# for one short read, so a thousand watches opening together cost this many connections.
HISTORY_READS = 4
# The shortest wait of ``read_events`` for a store without a read that never waits: Redis ends
# it on its next timer tick (about 100 ms at hz 10), not after 1 ms. BLOCK 0 would wait forever.
_SHORTEST_BLOCK_MS = 1


class EventWatch:
    """Recorded and live events, for any number of watches over one reader (``EventHub``).

    :param block_ms: how long the hub's read waits for new events.
    :param refresh: seconds between looks for new workspaces while watching them all.
    :param queue_max: live events queued for one watch at most; a watch whose caller reads
        slower than that falls behind and catches up from history on its own.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        block_ms: int = 1000,
        refresh: float = 2.0,
        queue_max: int = QUEUE_MAX,
    ) -> None:
        self._store = store
        self._hub = EventHub(store, block_ms=block_ms, count=WATCH_COUNT, refresh=refresh)
        self._queue_max = queue_max
        self._reads = asyncio.Semaphore(HISTORY_READS)
        self._listing: asyncio.Future[list[str]] | None = None
        self._history: Callable[[dict[str, str], int], Awaitable[list[Event]]]
        if isinstance(store, RecordedEventReads):
            self._history = store.read_recorded_events
        else:
            self._history = self._read_shortest_wait

    @property
    def hub(self) -> EventHub:
        """The reader the watches share."""
        return self._hub

    async def _workspaces(self) -> list[str]:
        """The workspaces there are; watches of all that open together share one listing."""
        if self._listing is None:
            self._listing = asyncio.ensure_future(self._store.workspaces())
            self._listing.add_done_callback(self._listed)
        return await asyncio.shield(self._listing)

    def _listed(self, listing: asyncio.Future[list[str]]) -> None:
        if self._listing is listing:
            self._listing = None
        if not listing.cancelled():
            listing.exception()  # retrieved: its awaiters, if any are left, raise it

    async def _read_shortest_wait(self, cursors: dict[str, str], count: int) -> list[Event]:
        return await self._store.read_events(cursors, _SHORTEST_BLOCK_MS, count)

    async def watch(self, workspace_id: str, after_id: str) -> AsyncGenerator[Event, None]:
        """Recorded events after ``after_id``, oldest first, then live ones, forever.

        With no workspace, events of every workspace in id order. Resuming then starts
        ``RESUME_OVERLAP_MS`` before ``after_id``, so an event of another workspace recorded
        in the same moment is not skipped: deliveries are at least once, deduplicate on
        (workspace, id). A watch whose caller reads too slowly for its queue catches up from
        the recorded events and goes on, in order and without a gap (as long as the stream
        still holds them: it is trimmed to about ``MAC_EVENTS_MAX``).

        :raise InvalidArgument: for a malformed workspace id or event id, before any event.
        :raise StorageError: a read failed; the caller resumes with the last id it got.
        """
        if workspace_id:
            validate_workspace_id(workspace_id)
        if after_id and not _EVENT_ID.fullmatch(after_id):
            raise InvalidArgument("after_id", "must be an event id like 1763900000000-0")
        start = after_id or "0-0"
        if not workspace_id and after_id:
            start = f"{max(event_position(start)[0] - RESUME_OVERLAP_MS, 0)}-0"
        subscriber = Subscriber(workspace_id, self._queue_max)
        last: dict[str, str] = {}  # the last id delivered of each workspace
        self._hub.add(subscriber)
        try:
            while True:
                async with contextlib.aclosing(self._catch_up(subscriber, last, start)) as past:
                    async for event in past:
                        yield event
                if not workspace_id:
                    await self._hub.read_since(subscriber)
                while not subscriber.behind:
                    for event in _sorted(await subscriber.take(), workspace_id):
                        if _new(event, last, start):
                            last[event.workspace_id] = event.id
                            yield event
                subscriber.resume()
        finally:
            self._hub.remove(subscriber)

    async def _catch_up(
        self, subscriber: Subscriber, last: dict[str, str], start: str
    ) -> AsyncGenerator[Event, None]:
        """Recorded events after ``last`` until a read reaches the end of every stream read,
        or the hub already reads on from where the watch is; then join the hub."""
        listed: list[str] = []
        if not subscriber.workspace_id and not self._hub.following_all:
            listed = await self._workspaces()
        while True:
            if subscriber.workspace_id:
                names = [subscriber.workspace_id]
            else:
                # every workspace there is, and any the hub reads that the list missed: once
                # it joins, the hub offers it only what it reads from then on
                names = sorted({*listed, *self._hub.followed()})
            cursors = {ws: last.get(ws, start) for ws in names}
            if self._hub.covers(subscriber, cursors):
                break
            async with self._reads:
                # another watch may have joined while this one waited for its turn
                if self._hub.covers(subscriber, cursors):
                    break
                events = await self._history(cursors, WATCH_COUNT) if cursors else []
            for event in in_order(events, WATCH_COUNT):
                if _new(event, last, start):
                    last[event.workspace_id] = event.id
                    yield event
            if not _cut_short(events, WATCH_COUNT) and (
                subscriber.workspace_id or set(self._hub.followed()) <= set(names)
            ):
                break
        self._hub.join(subscriber, {ws: last.get(ws, start) for ws in names})


def _sorted(events: list[Event], workspace_id: str) -> list[Event]:
    """Events of one workspace as they came; of all, in id order (already, but at a join)."""
    if workspace_id:
        return events
    return sorted(events, key=lambda e: (event_position(e.id), e.workspace_id))


def _new(event: Event, last: dict[str, str], start: str) -> bool:
    return event_position(event.id) > event_position(last.get(event.workspace_id, start))


def _cut_short(events: list[Event], count: int) -> bool:
    """Whether some stream returned ``count`` events, so it may hold more."""
    per_stream: dict[str, int] = {}
    for event in events:
        per_stream[event.workspace_id] = per_stream.get(event.workspace_id, 0) + 1
    return any(n >= count for n in per_stream.values())

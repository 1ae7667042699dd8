"""One reader of the live event streams per process, fanning each event out to every open
watch that follows its workspace."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Iterable

from sidecar.domain.decision import Event
from sidecar.domain.ports import EventStore

# What a watch that fell behind may hold before it must catch up from history.
QUEUE_MAX = 1024


def event_position(event_id: str) -> tuple[int, int]:
    """An event id (``ms-seq``) as a tuple that sorts as the stream does."""
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


def in_order(events: list[Event], count: int) -> list[Event]:
    """The events that can go out in id order now.

    A stream that returned ``count`` events may hold more, older than what other streams
    returned; events past its last one wait for the next read, so ids never go backwards.
    """
    last: dict[str, tuple[int, int]] = {}
    per_stream: dict[str, int] = {}
    for event in events:
        per_stream[event.workspace_id] = per_stream.get(event.workspace_id, 0) + 1
        last[event.workspace_id] = event_position(event.id)
    full = [last[ws] for ws, n in per_stream.items() if n >= count]
    cutoff = min(full) if full else None
    ready = [e for e in events if cutoff is None or event_position(e.id) <= cutoff]
    return sorted(ready, key=lambda e: (event_position(e.id), e.workspace_id))


class Subscriber:
    """One open watch as the hub sees it: the workspace it follows (``""`` for all), the
    events queued for it, and whether it fell behind.

    :param queue_max: events queued at most; one more and the queue is dropped and the
        subscriber marked ``behind``: it catches up from history, the others never wait.
    """

    def __init__(self, workspace_id: str, queue_max: int = QUEUE_MAX) -> None:
        self.workspace_id = workspace_id
        self.behind = False
        self.joined_at = 0
        self._queue: deque[Event] = deque()
        self._queue_max = queue_max
        self._error: Exception | None = None
        self._wakeup = asyncio.Event()

    def offer(self, events: list[Event]) -> bool:
        """Queue ``events`` (the hub, never waiting); false when they do not fit and the
        subscriber fell behind now."""
        if self.behind:
            return True
        fits = len(self._queue) + len(events) <= self._queue_max
        if fits:
            self._queue.extend(events)
        else:
            self._queue.clear()
            self.behind = True
        self._wakeup.set()
        return fits

    def fail(self, error: Exception) -> None:
        """The hub's read failed: the watch ends with ``error``."""
        self._error = error
        self._wakeup.set()

    def resume(self) -> None:
        """Take events again after falling behind; the caller catches up from history next."""
        self.behind = False

    async def take(self) -> list[Event]:
        """The events queued so far, waiting for one; none once ``behind``.

        :raise Exception: what the hub's read failed with.
        """
        while not self._queue and not self.behind and self._error is None:
            self._wakeup.clear()
            await self._wakeup.wait()
        if self._error is not None:
            raise self._error
        events = list(self._queue)
        self._queue.clear()
        return events


class EventHub:
    """Reads the tail of every workspace some subscriber follows, or of every workspace while
    one follows them all, with one blocking read at a time however many subscribers there are,
    and offers each event to the subscribers of its workspace and of all.

    A subscriber is added first, then catches up from history by itself, then ``join``s with
    the cursors it reached: the hub follows each workspace from the cursor it already has, or
    from the subscriber's. Events the hub reads from the moment a subscriber is added are
    offered to it, so history up to a read made after ``add`` and the queue from then on leave
    no gap; the subscriber drops what it already has by id. The reader runs while there are
    subscribers and stops with the last one.

    :param block_ms: how long one read waits for new events.
    :param count: events read per workspace at most in one read.
    :param refresh: seconds between looks for new workspaces while following all.
    """

    def __init__(
        self, store: EventStore, *, block_ms: int, count: int, refresh: float = 2.0
    ) -> None:
        self._store = store
        self._block_ms = block_ms
        self._count = count
        self._refresh = refresh
        self._cursors: dict[str, str] = {}
        self._of_workspace: dict[str, set[Subscriber]] = {}
        self._of_all: set[Subscriber] = set()
        self._following_all = False
        self._listed_at = float("-inf")
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.fell_behind = 0
        self._grown = False
        self._reads_started = 0
        self._reads_done = 0
        self._round = asyncio.Event()

    @property
    def subscribers(self) -> int:
        """Subscribers added and not yet removed."""
        return len(self._of_all) + sum(len(s) for s in self._of_workspace.values())

    @property
    def reading(self) -> bool:
        """Whether the reader task runs."""
        return self._task is not None

    def add(self, subscriber: Subscriber) -> None:
        """Offer ``subscriber`` every event read from now on; start the reader if it was
        stopped."""
        if subscriber.workspace_id:
            self._of_workspace.setdefault(subscriber.workspace_id, set()).add(subscriber)
        else:
            self._of_all.add(subscriber)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._read(), name="event-hub")

    def remove(self, subscriber: Subscriber) -> None:
        """Stop offering to ``subscriber``; forget the workspaces nobody follows any more, and
        stop the reader after the last subscriber."""
        ws = subscriber.workspace_id
        if ws:
            followers = self._of_workspace.get(ws, set())
            followers.discard(subscriber)
            if not followers:
                self._of_workspace.pop(ws, None)
                if not self._following_all:
                    self._cursors.pop(ws, None)
        else:
            self._of_all.discard(subscriber)
            if not self._of_all and self._following_all:
                self._following_all = False
                self._cursors = {w: c for w, c in self._cursors.items() if w in self._of_workspace}
        if not self._of_all and not self._of_workspace and self._task is not None:
            self._task.cancel()
            self._task = None
            self._cursors.clear()

    @property
    def following_all(self) -> bool:
        """Whether the hub follows every workspace (a subscriber of all joined)."""
        return self._following_all

    def followed(self) -> list[str]:
        """The workspaces the hub reads now. While following all, every one there is but
        for new ones it has yet to find, and will follow from their first event."""
        return sorted(self._cursors)

    def covers(self, subscriber: Subscriber, cursors: dict[str, str]) -> bool:
        """Whether the hub already reads on from ``cursors`` (or from before them): then the
        queue holds all that follows and ``subscriber`` needs no history read to join."""
        if not subscriber.workspace_id and not (
            self._following_all and self._cursors.keys() <= cursors.keys()
        ):
            return False
        for ws, cursor in cursors.items():
            followed = self._cursors.get(ws)
            if followed is None or event_position(followed) > event_position(cursor):
                return False
        return True

    def join(self, subscriber: Subscriber, cursors: dict[str, str]) -> None:
        """``subscriber`` caught up to ``cursors``: follow their workspaces from there unless
        they are followed already. A subscriber of all must have caught up on every
        workspace followed (``covers``); from then on every workspace is followed, and one
        followed for the first time from its first event, since subscribers of all that
        joined earlier have read none of it."""
        if not subscriber.workspace_id and not self._following_all:
            self._following_all = True
            self._listed_at = float("-inf")
        elif self._following_all:
            cursors = dict.fromkeys(cursors, "0-0")
        self._follow(cursors)
        subscriber.joined_at = self._reads_started
        self._changed.set()

    async def read_since(self, subscriber: Subscriber) -> None:
        """Wait until a read that started after ``subscriber`` joined has been fanned out (or
        the reader failed). A subscriber of all then holds, in its queue or behind it, every
        event after what it caught up to, of every workspace: sorted, they go out in id
        order; before, a workspace it made the hub follow could still hold older ones."""
        while self._reads_done <= subscriber.joined_at and self._task is not None:
            await self._round.wait()

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                if self._following_all and loop.time() - self._listed_at >= self._refresh:
                    await self._look_for_workspaces()
                    self._listed_at = loop.time()
                if not self._cursors:
                    self._changed.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), self._block_ms / 1000)
                    continue
                self._grown = False
                self._reads_started += 1
                started = self._reads_started
                events = await self._store.read_events(
                    dict(self._cursors), self._block_ms, self._count
                )
                if self._grown:
                    # a workspace followed meanwhile may hold older events than this read
                    # returned: read again with it (at once, the events are there), in order
                    continue
                self._fan_out(in_order(events, self._count))
                self._reads_done = started
                self._round.set()
                self._round = asyncio.Event()
        except asyncio.CancelledError:
            raise
        except (
            Exception
        ) as exc:  # every subscriber's stream ends with it, as a read of its own would
            if self._task is asyncio.current_task():
                self._fail(exc)

    async def _look_for_workspaces(self) -> None:
        listed = await self._store.workspaces()
        if self._following_all:
            # not followed while following all: registered since, all of its events new
            self._follow(dict.fromkeys(listed, "0-0"))

    def _follow(self, cursors: dict[str, str]) -> None:
        for ws, cursor in cursors.items():
            if ws not in self._cursors:
                self._cursors[ws] = cursor
                self._grown = True

    def _fan_out(self, events: Iterable[Event]) -> None:
        batches: dict[Subscriber, list[Event]] = {}
        for event in events:
            ws = event.workspace_id
            cursor = self._cursors.get(ws)
            # a workspace dropped, or followed again from later, while this read was under way
            if cursor is None or event_position(event.id) <= event_position(cursor):
                continue
            self._cursors[ws] = event.id
            for subscriber in (*self._of_workspace.get(ws, ()), *self._of_all):
                batches.setdefault(subscriber, []).append(event)
        for subscriber, batch in batches.items():
            if not subscriber.offer(batch):
                self.fell_behind += 1

    def _fail(self, error: Exception) -> None:
        for subscriber in (*self._of_all, *(s for ss in self._of_workspace.values() for s in ss)):
            subscriber.fail(error)
        self._of_all.clear()
        self._of_workspace.clear()
        self._cursors.clear()
        self._following_all = False
        self._task = None
        self._round.set()

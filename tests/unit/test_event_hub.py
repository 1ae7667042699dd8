"""One reader fans events out to any number of watches: no gap and no duplicate across the
switch from history to the live tail, whenever watches open, and a slow one holds up nobody."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from sidecar.domain.decision import Event
from sidecar.domain.errors import StorageError
from sidecar.usecases.events import EventWatch


class EventStreams:
    """The ``EventStore`` port over in-memory streams, ids from one clock as on one Redis."""

    def __init__(self) -> None:
        self.streams: dict[str, list[Event]] = {}
        self.reads = 0
        self.failing = False
        self._ms = 1000
        self._new = asyncio.Condition()

    async def record(self, ws: str) -> Event:
        self._ms += random.choice((0, 1))
        stream = self.streams.setdefault(ws, [])
        seq = int(stream[-1].id.split("-")[1]) + 1 if stream and stream[-1].at_ms == self._ms else 0
        event = Event(f"{self._ms}-{seq}", ws, "THRESHOLD_CROSSED", "2026-11", 80, 8, 10, self._ms)
        stream.append(event)
        async with self._new:
            self._new.notify_all()
        return event

    async def workspaces(self) -> list[str]:
        return sorted(self.streams)

    def _after(self, cursors: dict[str, str], count: int) -> list[Event]:
        def pos(i: str) -> tuple[int, int]:
            ms, seq = i.split("-")
            return int(ms), int(seq)

        found: list[Event] = []
        for ws, cursor in cursors.items():
            found += [e for e in self.streams.get(ws, []) if pos(e.id) > pos(cursor)][:count]
        return found

    async def read_events(self, cursors: dict[str, str], block_ms: int, count: int) -> list[Event]:
        self.reads += 1
        if self.failing:
            raise StorageError("redis: ConnectionError: gone", transient=True)
        async with self._new:
            if not self._after(cursors, count):
                try:
                    await asyncio.wait_for(self._new.wait(), block_ms / 1000)
                except TimeoutError:
                    return []
        return self._after(cursors, count)


async def collect(watch: EventWatch, ws: str, after: str, until: asyncio.Event) -> list[Event]:
    got: list[Event] = []

    async def read() -> None:
        async for event in watch.watch(ws, after):
            got.append(event)

    reader = asyncio.create_task(read())
    await until.wait()
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    return got


@pytest.mark.parametrize("seed", range(5))
async def test_watches_opened_under_writes_get_every_event_once_in_order(seed: int) -> None:
    random.seed(seed)
    store = EventStreams()
    watch = EventWatch(store, block_ms=50, refresh=0.05, queue_max=16)
    done = asyncio.Event()
    for ws in ("a", "b"):
        await store.record(ws)
    watchers: list[tuple[str, str, asyncio.Task[list[Event]]]] = []
    for step in range(300):
        await store.record(random.choice("abc" if step > 100 else "ab"))
        if step % 10 == 0:
            ws = random.choice(("a", "b", "c", ""))
            past = [e for s in store.streams.values() for e in s if not ws or e.workspace_id == ws]
            after = random.choice(past).id if past and random.random() < 0.5 else ""
            watchers.append((ws, after, asyncio.create_task(collect(watch, ws, after, done))))
        await asyncio.sleep(random.choice((0, 0, 0.001)))
    await asyncio.sleep(0.5)
    done.set()

    def pos(i: str) -> tuple[int, int]:
        ms, seq = i.split("-")
        return int(ms), int(seq)

    for ws, after, task in watchers:
        got = await task
        start = (max(pos(after)[0] - 5000, 0), 0) if after and not ws else pos(after or "0-0")
        wanted = [
            e for s in store.streams.values() for e in s
            if (not ws or e.workspace_id == ws) and pos(e.id) > start
        ]  # fmt: skip
        assert sorted(got, key=lambda e: (pos(e.id), e.workspace_id)) == sorted(
            wanted, key=lambda e: (pos(e.id), e.workspace_id)
        )
        if not ws:
            # in time order across workspaces too (within a millisecond, ids of different
            # streams say nothing of which came first), but for the first events of "c": a
            # workspace is found by looking every `refresh`, as before the hub
            times = [pos(e.id)[0] for e in got if e.workspace_id != "c"]
            assert times == sorted(times)
        for name in {e.workspace_id for e in got}:
            mine = [pos(e.id) for e in got if e.workspace_id == name]
            assert mine == sorted(mine)
    assert watch.hub.subscribers == 0


async def test_a_watch_nobody_reads_falls_behind_alone() -> None:
    store = EventStreams()
    watch = EventWatch(store, block_ms=50, queue_max=4)
    stuck = watch.watch("a", "")
    reading = watch.watch("a", "")
    first = await store.record("a")
    assert (await anext(stuck)).id == first.id
    assert (await anext(reading)).id == first.id
    later = [await store.record("a") for _ in range(20)]
    assert [(await asyncio.wait_for(anext(reading), 2)).id for _ in later] == [e.id for e in later]
    assert watch.hub.fell_behind >= 1
    assert [(await asyncio.wait_for(anext(stuck), 2)).id for _ in later] == [e.id for e in later]
    await stuck.aclose()
    await reading.aclose()
    assert not watch.hub.reading


async def test_one_read_serves_many_watches() -> None:
    store = EventStreams()
    watch = EventWatch(store, block_ms=50)
    await store.record("a")
    watches = [watch.watch("a" if n % 2 else "", "") for n in range(200)]
    await asyncio.gather(*(anext(w) for w in watches))
    reads = store.reads
    await asyncio.sleep(0.5)  # ten blocking reads' time: one reader, not one per watch
    assert store.reads - reads <= 12
    for w in watches:
        await w.aclose()


async def test_a_failed_read_ends_every_watch_with_its_error() -> None:
    store = EventStreams()
    watch = EventWatch(store, block_ms=50)
    await store.record("a")
    watches = [watch.watch("a", ""), watch.watch("", "")]
    for w in watches:
        await anext(w)
    store.failing = True
    for w in watches:
        with pytest.raises(StorageError):
            await asyncio.wait_for(anext(w), 2)
    assert not watch.hub.reading
    store.failing = False  # a new watch starts a new reader
    again = watch.watch("a", "")
    assert (await anext(again)).workspace_id == "a"
    await again.aclose()

"""WatchEvents streams share one reader per process: a thousand of them cost no more Redis
connections than one, each gets every event in order, and a slow one holds up nobody."""

from __future__ import annotations

import asyncio
import contextlib

import grpc
import redis

from sidecar.domain.decision import Event
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.server.app import Sidecar
from sidecar.storage.keys import WorkspaceKeys
from sidecar.usecases.events import HISTORY_READS, EventWatch
from tests.support.calls import fill, kinds, subscribe
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory

STREAMS = {"acme": 400, "globex": 300, "": 300}  # workspace ("" for all): open streams
CHANNELS = 10


def connections(redis_db: redis.Redis) -> int:
    """Clients connected to the test's Redis server, less the test's own."""
    return len(redis_db.client_list()) - 1


class Watcher:
    """One WatchEvents stream, reading into ``events`` until it is cancelled."""

    def __init__(self, stub: admin_grpc.AdminStub, ws: str) -> None:
        self.ws = ws
        self.events: list[admin_pb.Event] = []
        self.arrived = asyncio.Event()
        self.wanted = 0
        self._call = stub.WatchEvents(admin_pb.WatchEventsRequest(workspace_id=ws), metadata=AUTH)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            async for event in self._call:
                self.events.append(event)
                if len(self.events) >= self.wanted:
                    self.arrived.set()

    def expect(self, count: int) -> None:
        self.wanted = count
        if len(self.events) >= count:
            self.arrived.set()
        else:
            self.arrived.clear()

    def cancel(self) -> None:
        self._call.cancel()


async def test_a_thousand_streams_share_one_reader(
    make_sidecar: SidecarFactory, redis_db: redis.Redis
) -> None:
    enforcer = await make_sidecar(max_streams=1100)
    sidecar: Sidecar = make_sidecar.last
    admin = make_sidecar.admin()
    for ws in ("acme", "globex"):
        await subscribe(admin, ws, plan="enterprise", custom_limit=10)
    await fill(enforcer, 0, 8, "acme")  # 80 %: recorded before any stream opens
    baseline = connections(redis_db)

    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.port}") for _ in range(CHANNELS)]
    stubs = [admin_grpc.AdminStub(ch) for ch in channels]
    peak = 0
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, await asyncio.to_thread(connections, redis_db))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    watchers = [
        Watcher(stubs[n % CHANNELS], ws) for ws, count in STREAMS.items() for n in range(count)
    ]
    try:
        for w in watchers:
            w.expect(1)  # the 80 % of acme, from history
        await asyncio.wait_for(
            asyncio.gather(*(w.arrived.wait() for w in watchers if w.ws != "globex")), 30
        )
        for _ in range(200):  # the globex streams have nothing to read yet: until they joined
            if sidecar.events.hub.subscribers == len(watchers):
                break
            await asyncio.sleep(0.05)
        assert sidecar.events.hub.subscribers == len(watchers) == 1000
        open_now = connections(redis_db)

        # recorded while every stream is open: each must get them, in order, once
        await fill(enforcer, 8, 2, "acme")  # 100 %
        await fill(enforcer, 0, 10, "globex")  # 80 %, 100 %
        expected = {
            "acme": [("THRESHOLD_CROSSED", 80), ("THRESHOLD_CROSSED", 100)],
            "globex": [("THRESHOLD_CROSSED", 80), ("THRESHOLD_CROSSED", 100)],
        }
        for w in watchers:
            w.expect(4 if w.ws == "" else 2)
        await asyncio.wait_for(asyncio.gather(*(w.arrived.wait() for w in watchers)), 30)
        await asyncio.sleep(0.3)  # nothing more may come: no duplicates
    finally:
        sampling = False
        await sampler
        for w in watchers:
            w.cancel()
        await asyncio.gather(*(w.task for w in watchers))
        for ch in channels:
            await ch.close()

    for w in watchers:
        if w.ws:
            assert kinds(w.events) == expected[w.ws]
            assert all(e.workspace_id == w.ws for e in w.events)
        else:
            by_ws = {ws: kinds([e for e in w.events if e.workspace_id == ws]) for ws in expected}
            assert by_ws == expected
            ids = [tuple(map(int, e.id.split("-"))) for e in w.events]
            assert ids == sorted(ids)
    # one reader, a few short history reads at a time: no connection per stream
    print(f"\nconnections: baseline {baseline}, 1000 streams open {open_now}, peak {peak}")
    # the reader and the connections its pool keeps of the short reads, however many streams.
    # The native engine differs by a few: it hands the thousand streams to the loop in batches
    # of 64 at once rather than one by one, so more of their short reads (the listing of the
    # workspaces, the hub's) overlap the history reads; still no connection per stream.
    overlap = 2 if sidecar.settings.grpc_engine == "grpcio" else 4
    assert peak - baseline <= HISTORY_READS + overlap
    for _ in range(100):  # the reader stops with the last stream
        if not sidecar.events.hub.reading:
            break
        await asyncio.sleep(0.02)
    assert not sidecar.events.hub.reading
    assert sidecar.events.hub.subscribers == 0


async def test_a_slow_stream_catches_up_and_holds_up_nobody(
    sidecar_app: Sidecar, redis_db: redis.Redis
) -> None:
    """Through the real store: a watch that is not read while 50 events arrive falls behind
    (its queue holds 8), then gets all of them, in order, from history; a watch read all along
    got them live."""
    watch = EventWatch(sidecar_app.store, block_ms=200, queue_max=8)
    stream = WorkspaceKeys("acme").events

    def record(n: int) -> str:
        fields = {"type": "THRESHOLD_CROSSED", "workspace": "acme", "period": "2026-11",
                  "threshold": n, "active": n, "limit": 100, "at": 0}  # fmt: skip
        entry_id: bytes = redis_db.xadd(stream, fields)  # type: ignore[arg-type,assignment]
        return entry_id.decode()

    first = record(0)
    slow = watch.watch("acme", first)
    fast = watch.watch("acme", first)
    got_fast: list[str] = []
    try:

        async def first_of_slow() -> Event:
            return await anext(slow)

        slow_first = asyncio.create_task(first_of_slow())
        fast_done = asyncio.Event()

        async def read_fast() -> None:
            async for event in fast:
                got_fast.append(event.id)
                if len(got_fast) == 50:
                    fast_done.set()

        reader = asyncio.create_task(read_fast())
        await asyncio.sleep(0.3)  # both joined the hub
        ids = [record(n) for n in range(1, 51)]
        await asyncio.wait_for(fast_done.wait(), 10)
        assert got_fast == ids
        assert (await asyncio.wait_for(slow_first, 5)).id == ids[0]
        got_slow = [ids[0]] + [(await asyncio.wait_for(anext(slow), 5)).id for _ in ids[1:]]
        assert got_slow == ids
        assert watch.hub.fell_behind >= 1
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    finally:
        await slow.aclose()
        await fast.aclose()
    assert watch.hub.subscribers == 0

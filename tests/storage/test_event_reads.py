"""The read of recorded events that never waits, and watches catching up with it."""

from __future__ import annotations

import asyncio

import redis

from sidecar.storage.keys import REGISTRY, WorkspaceKeys
from sidecar.storage.store import RedisStore
from sidecar.usecases.events import EventWatch


def record(redis_db: redis.Redis, ws: str, n: int) -> str:
    fields = {"type": "THRESHOLD_CROSSED", "workspace": ws, "period": "2026-11",
              "threshold": n, "active": n, "limit": 100, "at": 0}  # fmt: skip
    entry_id: bytes = redis_db.xadd(WorkspaceKeys(ws).events, fields)  # type: ignore[arg-type,assignment]
    return entry_id.decode()


async def test_it_reads_at_most_count_and_nothing_at_the_end(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    ids = [record(redis_db, "acme", n) for n in range(5)]
    got = await store.read_recorded_events({"acme": "0-0", "globex": "0-0"}, 3)
    assert [e.id for e in got] == ids[:3]
    assert await store.read_recorded_events({"acme": ids[-1], "globex": "0-0"}, 3) == []
    assert await store.read_recorded_events({}, 3) == []


async def test_watches_catch_up_with_it_and_go_on_live(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    redis_db.sadd(REGISTRY, "acme", "globex")
    past = [record(redis_db, "acme", n) for n in range(250)]  # more than one read's count
    watch = EventWatch(store, block_ms=200)
    one, every = watch.watch("acme", past[9]), watch.watch("", "")
    try:
        assert [(await anext(one)).id for _ in past[10:]] == past[10:]
        assert [(await anext(every)).id for _ in past] == past
        live = [record(redis_db, "globex", 0), record(redis_db, "acme", 250)]
        assert (await asyncio.wait_for(anext(one), 5)).id == live[1]
        assert [(await asyncio.wait_for(anext(every), 5)).id for _ in live] == live
    finally:
        await one.aclose()
        await every.aclose()
    assert not watch.hub.reading

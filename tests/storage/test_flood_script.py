"""decide.lua's flood guard (lib/flood.lua) against a real Redis, as the store decodes it; no
gRPC: the sliding minute, HOLD and FLAG, one event per minute of flood, late decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from sidecar.domain.audit import AuditContext
from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.clock import to_ms
from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Reason
from sidecar.domain.period import period_at
from sidecar.domain.ports import DecideReply, DecideRequest
from sidecar.domain.subscription import FloodGuard, Subscription, resolve
from sidecar.storage.keys import WorkspaceKeys
from sidecar.storage.store import RedisStore
from tests.support.constants import SMALL_POLICY as POLICY

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
AUDIT = AuditContext("ops", "SetSubscription", to_ms(NOW))
PERIOD = period_at(NOW)
EXPIRES = to_ms(datetime(2027, 2, 1, tzinfo=UTC))
FLOOD = WorkspaceKeys("acme").flood


def one(n: int) -> KeyedContact:
    return KeyedContact((n.to_bytes(14, "big"),))


async def subscribe(store: RedisStore, guard: FloodGuard | None, *, shadow: bool = False) -> str:
    sub = Subscription(
        "acme", "enterprise", custom_limit=1000, flood_guard=guard, shadow_mode=shadow
    )
    return str(await store.set_subscription(resolve(sub, PlanCatalog()), NOW, 0, AUDIT))


async def decide(
    store: RedisStore,
    version: str,
    contacts: range | list[int],
    *,
    after: float = 0,
    dry_run: bool = False,
) -> list[Reason]:
    reply = await decide_reply(store, version, contacts, after=after, dry_run=dry_run)
    return [o.reason for o in reply.outcomes]


async def decide_reply(
    store: RedisStore,
    version: str,
    contacts: range | list[int],
    *,
    after: float = 0,
    dry_run: bool = False,
) -> DecideReply:
    at = to_ms(NOW + timedelta(seconds=after))
    keyed = [one(n) for n in contacts]
    return await store.decide(
        DecideRequest("acme", PERIOD, at, EXPIRES, POLICY, version, keyed, dry_run)
    )


def flood_events(redis_db: redis.Redis) -> list[dict[bytes, bytes]]:
    entries: Any = redis_db.xrange(WorkspaceKeys("acme").events)
    return [fields for _, fields in entries if fields[b"type"] == b"FLOOD_DETECTED"]


async def test_hold_admits_the_rate_in_a_minute_and_the_window_slides(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    version = await subscribe(store, FloodGuard(5, "HOLD"))
    assert (
        await decide(store, version, range(8)) == [Reason.ADMITTED] * 5 + [Reason.RATE_LIMITED] * 3
    )
    # a counted contact is answered as ever, while new ones wait
    assert await decide(store, version, [0, 20], after=10) == [
        Reason.ALREADY_ACTIVE,
        Reason.RATE_LIMITED,
    ]
    # half a minute on, the five of the first second are still in the minute
    assert await decide(store, version, [21], after=30) == [Reason.RATE_LIMITED]
    # 59 s on they are still in it; 60 s on they left it
    assert await decide(store, version, [22], after=59.9) == [Reason.RATE_LIMITED]
    assert (
        await decide(store, version, range(30, 37), after=60)
        == [Reason.ADMITTED] * 5 + [Reason.RATE_LIMITED] * 2
    )
    # the old second's bucket is gone: the hash keeps the minute only
    keys: Any = redis_db.hkeys(FLOOD)
    buckets = [k for k in keys if k.startswith(b"b:")]
    assert buckets == [f"b:{to_ms(NOW) // 1000 + 60}".encode()]
    assert redis_db.hget(FLOOD, "sum") == b"5"
    # the denied were never counted
    assert redis_db.scard(WorkspaceKeys("acme").members(PERIOD.key)) == 10


async def test_admissions_spread_over_the_minute_leave_it_one_second_at_a_time(
    store: RedisStore,
) -> None:
    version = await subscribe(store, FloodGuard(3, "HOLD"))
    assert await decide(store, version, [1], after=0) == [Reason.ADMITTED]
    assert await decide(store, version, [2], after=20) == [Reason.ADMITTED]
    assert await decide(store, version, [3], after=40) == [Reason.ADMITTED]
    assert await decide(store, version, [4], after=59) == [Reason.RATE_LIMITED]
    # the first left at 60 s: one place, the second's leaves at 80 s
    assert await decide(store, version, [5, 6], after=60) == [
        Reason.ADMITTED,
        Reason.RATE_LIMITED,
    ]
    assert await decide(store, version, [7], after=80) == [Reason.ADMITTED]
    # long after, the whole minute is free again
    assert await decide(store, version, range(10, 14), after=1000) == [Reason.ADMITTED] * 3 + [
        Reason.RATE_LIMITED
    ]


async def test_flag_admits_all_and_records_one_event_per_minute_of_flood(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    version = await subscribe(store, FloodGuard(5, "FLAG"))
    assert await decide(store, version, range(8)) == [Reason.ADMITTED] * 8
    assert await decide(store, version, range(8, 14), after=30) == [Reason.ADMITTED] * 6
    (event,) = flood_events(redis_db)
    assert (event[b"active"], event[b"limit"], event[b"at"]) == (
        b"5",
        b"5",
        str(to_ms(NOW)).encode(),
    )
    # the next minute: the six of 30 s are still in the window, a flood again
    assert await decide(store, version, [20], after=65) == [Reason.ADMITTED]
    assert len(flood_events(redis_db)) == 2
    assert await store.last_flood_ms("acme") == to_ms(NOW + timedelta(seconds=65))


async def test_hold_records_the_flood_once_a_minute(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    version = await subscribe(store, FloodGuard(2, "HOLD"))
    reply = await decide_reply(store, version, range(5))
    assert reply.outcomes[4].reason is Reason.RATE_LIMITED
    await decide(store, version, range(5, 9), after=20)
    (event,) = flood_events(redis_db)
    assert (event[b"active"], event[b"limit"]) == (b"2", b"2")


async def test_a_late_decision_never_moves_the_window_back(store: RedisStore) -> None:
    version = await subscribe(store, FloodGuard(2, "HOLD"))
    assert await decide(store, version, [1, 2], after=100) == [Reason.ADMITTED] * 2
    # an event of 90 s before is decided in the window's newest second
    assert await decide(store, version, [3], after=10) == [Reason.RATE_LIMITED]
    assert await decide(store, version, [4], after=159) == [Reason.RATE_LIMITED]
    assert await decide(store, version, [5], after=160) == [Reason.ADMITTED]


async def test_a_dry_run_answers_what_activate_would_and_writes_nothing(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    version = await subscribe(store, FloodGuard(3, "HOLD"))
    assert (
        await decide(store, version, range(5), dry_run=True)
        == [Reason.WITHIN_LIMIT] * 3 + [Reason.RATE_LIMITED] * 2
    )
    assert not redis_db.exists(FLOOD)
    await decide(store, version, range(3))
    before = redis_db.hgetall(FLOOD)
    assert await decide(store, version, [0, 9], after=1, dry_run=True) == [
        Reason.ALREADY_ACTIVE,
        Reason.RATE_LIMITED,
    ]
    assert redis_db.hgetall(FLOOD) == before
    assert flood_events(redis_db) == []


async def test_shadow_mode_allows_past_the_rate_without_counting(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    version = await subscribe(store, FloodGuard(1, "HOLD"), shadow=True)
    reply = await decide_reply(store, version, range(3))
    assert [(o.reason, o.shadowed) for o in reply.outcomes] == [
        (Reason.ADMITTED, False),
        (Reason.RATE_LIMITED, True),
        (Reason.RATE_LIMITED, True),
    ]
    assert reply.active == 1
    assert len(flood_events(redis_db)) == 1


async def test_without_a_guard_nothing_is_kept(store: RedisStore, redis_db: redis.Redis) -> None:
    version = await subscribe(store, None)
    assert await decide(store, version, range(50)) == [Reason.ADMITTED] * 50
    assert not redis_db.exists(FLOOD)
    assert await store.last_flood_ms("acme") == 0


async def test_the_limit_applies_under_the_rate(store: RedisStore) -> None:
    sub = Subscription("acme", "enterprise", custom_limit=2, flood_guard=FloodGuard(100, "HOLD"))
    version = str(await store.set_subscription(resolve(sub, PlanCatalog()), NOW, 0, AUDIT))
    assert await decide(store, version, range(3)) == [
        Reason.ADMITTED,
        Reason.ADMITTED,
        Reason.LIMIT_REACHED,
    ]

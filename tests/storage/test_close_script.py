"""close.lua and the closing adapter against a real Redis: the closed mark, the statement
written once, PERIOD_CLOSED recorded once however many close at once, and the sweep's lease."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
import redis

from sidecar.domain.audit import AuditContext
from sidecar.domain.clock import from_ms, to_ms
from sidecar.domain.closing_ports import CloseRequest
from sidecar.domain.contact import KeyedContact
from sidecar.domain.errors import PeriodClosed
from sidecar.domain.period import BillingPeriod, period_at
from sidecar.domain.ports import DecideRequest, MergeRequest
from sidecar.storage.closing import RedisPeriodClosing, statement
from sidecar.storage.connections import RedisConnections, RedisOptions
from sidecar.storage.keys import CLOSE_LEASE, REGISTRY, WorkspaceKeys
from sidecar.storage.store import RedisStore
from tests.support.constants import SMALL_POLICY as POLICY
from tests.support.redis_servers import RedisServer

NOVEMBER = period_at(datetime(2026, 11, 15, tzinfo=UTC))
CLOSE_AT = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
KEYS = WorkspaceKeys("acme")


@pytest.fixture
async def connections(
    redis_server: RedisServer, redis_db: redis.Redis
) -> AsyncIterator[RedisConnections]:
    options = RedisOptions(
        urls=(redis_server.url,), topology="single", timeout=0.5, max_connections=64
    )
    opened = RedisConnections.from_options(options)
    yield opened
    await opened.close()


@pytest.fixture
def closing(connections: RedisConnections) -> RedisPeriodClosing:
    return RedisPeriodClosing(connections.pool)


def close_request(period: BillingPeriod = NOVEMBER, at: datetime = CLOSE_AT) -> CloseRequest:
    return CloseRequest("acme", period, to_ms(at), 100, "starter", 50)


def closed_events(redis_db: redis.Redis) -> list[dict[bytes, bytes]]:
    entries: Any = redis_db.xrange(KEYS.events)
    return [f for _, f in entries if f[b"type"] == b"PERIOD_CLOSED"]


async def test_a_counted_period_closes_with_its_statement_and_one_event(
    closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    redis_db.hset(
        KEYS.counts,
        mapping={
            "2026-11": 7,
            "2026-11:limit": 10,
            "2026-11:plan": "growth",
            "2026-11:packs": 2,
            "2026-11:overage": 1,
        },
    )
    (first,) = await closing.close_periods([close_request()])
    assert first.closed_now
    assert first.closed_at_ms == to_ms(CLOSE_AT)
    statement = first.statement
    assert statement is not None
    assert (statement.workspace_id, statement.period) == ("acme", NOVEMBER)
    assert (statement.active, statement.limit, statement.plan) == (7, 10, "growth")
    assert (statement.packs, statement.overage) == (2, 1)
    assert (statement.trial_plan, statement.trial_ends_at) == ("", None)
    assert statement.closed_at == CLOSE_AT
    assert redis_db.hget(KEYS.counts, "2026-11:closed") == str(to_ms(CLOSE_AT)).encode()
    (event,) = closed_events(redis_db)
    assert {k.decode(): v.decode() for k, v in event.items()} == {
        "type": "PERIOD_CLOSED",
        "workspace": "acme",
        "period": "2026-11",
        "threshold": "0",
        "active": "7",
        "limit": "10",
        "at": str(to_ms(CLOSE_AT)),
        "plan": "growth",
        "packs": "2",
        "overage": "1",
        "trial_plan": "",
        "trial_until": "0",
    }

    # closing again, later, changes nothing and answers the same statement
    (again,) = await closing.close_periods([close_request(at=datetime(2026, 12, 2, tzinfo=UTC))])
    assert not again.closed_now
    assert again.closed_at_ms == to_ms(CLOSE_AT)
    assert again.statement == statement
    assert len(closed_events(redis_db)) == 1


async def test_many_closing_one_period_at_once_record_one_event(
    connections: RedisConnections, redis_db: redis.Redis
) -> None:
    redis_db.hset(KEYS.counts, mapping={"2026-11": 3, "2026-11:limit": 10})
    closers = [RedisPeriodClosing(connections.pool) for _ in range(4)]
    replies = await asyncio.gather(
        *(c.close_periods([close_request()] * 5) for c in closers for _ in range(5))
    )
    outcomes = [reply for batch in replies for reply in batch]
    assert sum(reply.closed_now for reply in outcomes) == 1
    assert len({reply.statement for reply in outcomes}) == 1
    assert len(closed_events(redis_db)) == 1


async def test_a_closed_period_refuses_decisions_and_keeps_its_count(
    connections: RedisConnections, closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    store = RedisStore(connections)
    at = to_ms(datetime(2026, 11, 20, tzinfo=UTC))

    def request(n: int) -> DecideRequest:
        contact = KeyedContact((n.to_bytes(14, "big"),))
        return DecideRequest("acme", NOVEMBER, at, at + 10**10, POLICY, "", [contact])

    await store.decide(request(1))
    await closing.close_periods([close_request()])
    with pytest.raises(PeriodClosed) as refused:
        await store.decide(request(2))
    assert refused.value.closed_at_ms == to_ms(CLOSE_AT)
    assert redis_db.hget(KEYS.counts, "2026-11") == b"1"
    assert redis_db.scard(KEYS.members("2026-11")) == 1


async def test_a_period_without_a_count_is_marked_closed_with_no_statement_or_event(
    closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    (reply,) = await closing.close_periods([close_request()])
    assert (reply.closed_now, reply.statement) == (True, None)
    assert redis_db.hget(KEYS.counts, "2026-11:closed") == str(to_ms(CLOSE_AT)).encode()
    assert not redis_db.exists(KEYS.statements)
    assert closed_events(redis_db) == []
    assert await closing.period_closed_at("acme", "2026-11") == to_ms(CLOSE_AT)
    assert await closing.period_closed_at("acme", "2026-10") == 0


async def test_the_statement_falls_back_on_the_default_plan_and_zero_packs_and_overage(
    closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    redis_db.hset(KEYS.counts, mapping={"2026-11": 4, "2026-11:limit": 5})
    (reply,) = await closing.close_periods([close_request()])
    assert reply.statement is not None
    assert (reply.statement.plan, reply.statement.packs, reply.statement.overage) == (
        "starter",
        0,
        0,
    )


@pytest.mark.parametrize(
    ("started", "until", "ran"),
    [
        (datetime(2026, 11, 20), datetime(2026, 12, 4), True),  # into December
        (datetime(2026, 10, 25), datetime(2026, 11, 2), True),  # from October
        (datetime(2026, 10, 1), datetime(2026, 10, 31), False),  # over before November
        (datetime(2026, 12, 1), datetime(2026, 12, 10), False),  # after November
    ],
)
async def test_a_trial_that_ran_in_the_period_is_in_its_statement(
    closing: RedisPeriodClosing,
    redis_db: redis.Redis,
    started: datetime,
    until: datetime,
    ran: bool,
) -> None:
    start_ms, until_ms = to_ms(started.replace(tzinfo=UTC)), to_ms(until.replace(tzinfo=UTC))
    redis_db.hset(KEYS.counts, mapping={"2026-11": 4, "2026-11:limit": 50})
    redis_db.hset(KEYS.trial, mapping={"until": until_ms, "plan": "growth", "started": start_ms})
    (reply,) = await closing.close_periods([close_request()])
    assert reply.statement is not None
    if ran:
        assert reply.statement.trial_plan == "growth"
        assert reply.statement.trial_ends_at == from_ms(until_ms)
    else:
        assert (reply.statement.trial_plan, reply.statement.trial_ends_at) == ("", None)
    (event,) = closed_events(redis_db)
    assert event[b"trial_plan"] == (b"growth" if ran else b"")


async def test_workspace_periods_read_counted_closed_and_the_basis(
    closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    redis_db.hset(
        KEYS.counts,
        mapping={"2026-10": 2, "2026-10:limit": 5, "2026-10:closed": 99, "2026-11@1794000000": 1},
    )
    redis_db.hset(KEYS.subscription, mapping={"timezone": "Europe/Berlin", "starts_at": 5})
    found, empty = await closing.workspace_periods(["acme", "none"])
    assert sorted(found.counted) == ["2026-10", "2026-11@1794000000"]
    assert found.closed == {"2026-10": 99}
    assert (found.basis.timezone, found.basis.starts_at_ms) == ("Europe/Berlin", 5)
    assert (empty.workspace_id, empty.counted, empty.closed) == ("none", [], {})


async def test_the_registry_is_scanned_in_steps(
    closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    redis_db.sadd(REGISTRY, *(f"ws-{n}" for n in range(300)))
    seen: list[str] = []
    cursor, steps = 0, 0
    while True:
        cursor, found = await closing.scan_workspaces(cursor, 50)
        seen.extend(found)
        steps += 1
        if cursor == 0:
            break
    assert set(seen) == {f"ws-{n}" for n in range(300)}
    assert steps > 1


async def test_the_sweep_lease_is_held_by_one_owner_at_a_time(
    closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    assert await closing.hold_lease("a", 10_000)
    assert not await closing.hold_lease("b", 10_000)
    assert await closing.hold_lease("a", 10_000)  # renewed
    await closing.release_lease("b")  # not b's: stays
    assert redis_db.get(CLOSE_LEASE) == b"a"
    await closing.release_lease("a")
    assert await closing.hold_lease("b", 10_000)
    assert 0 < redis_db.pttl(CLOSE_LEASE) <= 10_000


def test_a_statement_is_json_of_decimal_strings() -> None:
    text = json.dumps(
        {
            "period": "2026-11",
            "start_ms": "1793491200000",
            "end_ms": "1796083200000",
            "active": "3",
            "limit": "10",
            "plan": "growth",
            "packs": "1",
            "overage": "0",
            "trial_plan": "",
            "trial_until_ms": "0",
            "closed_at_ms": "1796083500000",
        }
    )
    found = statement("acme", "2026-11", text)
    assert found.period == NOVEMBER
    assert (found.active, found.limit, found.plan, found.packs) == (3, 10, "growth", 1)
    assert found.closed_at == datetime(2026, 12, 1, 0, 5, tzinfo=UTC)


async def test_a_merge_in_a_closed_period_folds_identities_but_leaves_its_count(
    connections: RedisConnections, closing: RedisPeriodClosing, redis_db: redis.Redis
) -> None:
    store = RedisStore(connections)
    at = to_ms(datetime(2026, 11, 20, tzinfo=UTC))
    first, second = (KeyedContact((n.to_bytes(14, "big"),)) for n in (1, 2))
    await store.decide(DecideRequest("acme", NOVEMBER, at, at + 10**10, POLICY, "", [first]))
    await store.decide(DecideRequest("acme", NOVEMBER, at, at + 10**10, POLICY, "", [second]))
    await closing.close_periods([close_request()])
    audit = AuditContext("ops", "Merge", at)
    merged = await store.merge(
        MergeRequest("acme", NOVEMBER.key, at + 10**10, first, [second], audit)
    )
    assert (merged.folded, merged.uncounted, merged.active) == (1, 0, 2)
    assert redis_db.hget(KEYS.counts, "2026-11") == b"2"
    assert redis_db.scard(KEYS.members("2026-11")) == 2

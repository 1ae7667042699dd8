"""Closed periods: a period closes at its end plus MAC_LATENESS_SECONDS, by the first
decision or sweep after that, and records PERIOD_CLOSED exactly once, whoever closes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from prometheus_client import REGISTRY

from sidecar.domain.clock import ManualClock, to_ms
from sidecar.domain.period import period_at
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.storage.keys import WorkspaceKeys
from sidecar.usecases.closing import PeriodClosing
from tests.support.calls import fill, kinds, no_more_events, read_events, subscribe
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory

END = datetime(2026, 12, 1, tzinfo=UTC)
LATENESS = timedelta(seconds=300)
CLOSES = END + LATENESS
DECEMBER = period_at(END)


def periods_closed() -> float:
    return REGISTRY.get_sample_value("mac_periods_closed_total") or 0.0


def closed_events(redis_db: redis.Redis, ws: str = "acme") -> list[dict[bytes, bytes]]:
    entries: Any = redis_db.xrange(WorkspaceKeys(ws).events)
    return [f for _, f in entries if f[b"type"] == b"PERIOD_CLOSED"]


async def test_at_end_plus_lateness_the_period_closes_and_the_event_is_recorded_once(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    sidecar_app: Sidecar,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=50, packs=1)
    await fill(enforcer_stub, 0, 7)
    clock.set(CLOSES - timedelta(milliseconds=1))
    assert (await sidecar_app.closing.sweep()).closed == 0
    assert closed_events(redis_db) == []

    clock.set(CLOSES)
    closed_before = periods_closed()
    assert (await sidecar_app.closing.sweep()).closed == 1
    assert (await sidecar_app.closing.sweep()).closed == 0
    await sidecar_app.closing.close_due(["acme"])
    assert len(closed_events(redis_db)) == 1
    assert periods_closed() == closed_before + 1
    assert (
        redis_db.hget(WorkspaceKeys("acme").counts, "2026-11:closed") == str(to_ms(CLOSES)).encode()
    )

    events = await read_events(admin_stub, 1)
    assert kinds(events) == [("PERIOD_CLOSED", 0)]
    (event,) = events
    assert (event.period, event.active, event.limit) == ("2026-11", 7, 3050)
    assert event.plan == "enterprise"
    assert event.at.ToDatetime(tzinfo=UTC) == CLOSES
    assert not event.HasField("trial_ends_at")
    assert await no_more_events(admin_stub, event.id)


async def test_two_sidecars_closing_at_once_record_one_event(
    make_sidecar: SidecarFactory, clock: ManualClock, redis_db: redis.Redis
) -> None:
    stub = await make_sidecar()
    first = make_sidecar.last
    await make_sidecar()
    second = make_sidecar.last
    workspaces = [f"ws-{n}" for n in range(20)]
    for ws in workspaces:
        await fill(stub, 0, 3, ws=ws)
    clock.set(CLOSES + timedelta(hours=1))
    for closing in (first.closing, second.closing):
        for ws in workspaces:
            closing.note_decision(ws, DECEMBER, clock.now())

    async def by_sweep(closing: PeriodClosing) -> int:
        return (await closing.sweep()).closed

    closed = await asyncio.gather(
        by_sweep(first.closing),
        by_sweep(second.closing),
        first.closing.close_due(workspaces),
        second.closing.close_due(workspaces),
    )
    await first.closing.settled()
    await second.closing.settled()
    assert sum(closed) <= len(workspaces)
    for ws in workspaces:
        assert len(closed_events(redis_db, ws)) == 1, ws


async def test_a_workspace_no_decision_came_for_is_closed_by_the_periodic_sweep(
    make_sidecar: SidecarFactory, clock: ManualClock, redis_db: redis.Redis
) -> None:
    stub = await make_sidecar(close_sweep_seconds=1)
    await fill(stub, 0, 4, ws="quiet")
    clock.set(END + timedelta(days=3))  # days later, no decision
    for _ in range(100):
        if closed_events(redis_db, "quiet"):
            break
        await asyncio.sleep(0.1)
    (event,) = closed_events(redis_db, "quiet")
    assert event[b"active"] == b"4"


async def test_the_sweep_lease_lets_one_sidecar_sweep_at_a_time(
    make_sidecar: SidecarFactory,
) -> None:
    sweepers = []
    for _ in range(2):
        stub = await make_sidecar(close_sweep_seconds=1)
        sweepers.append(make_sidecar.last.closing)
    await fill(stub, 0, 1)  # a workspace to sweep: an unused Redis is not swept
    for _ in range(100):
        if sum(s.sweeps_run for s in sweepers) >= 3:
            break
        await asyncio.sleep(0.1)
    assert sorted(s.sweeps_run > 0 for s in sweepers) == [False, True]


async def test_a_redis_no_workspace_used_gets_no_lease(
    make_sidecar: SidecarFactory, redis_db: redis.Redis
) -> None:
    await make_sidecar(close_sweep_seconds=1)
    sweeper = make_sidecar.last.closing
    await asyncio.sleep(1.5)  # a sweep interval and a half
    assert (sweeper.sweeps_run, redis_db.dbsize()) == (0, 0)


async def test_a_decision_after_the_close_instant_closes_the_previous_period_in_the_background(
    enforcer_stub: pb_grpc.EnforcerStub,
    sidecar_app: Sidecar,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    await fill(enforcer_stub, 0, 2)
    closing = sidecar_app.closing
    clock.set(CLOSES - timedelta(seconds=1))
    closing.note_decision("acme", DECEMBER, clock.now())
    await closing.settled()
    assert closed_events(redis_db) == []

    clock.set(CLOSES)
    closing.note_decision("acme", DECEMBER, clock.now())
    assert closing.in_flight == 1
    await closing.settled()
    assert len(closed_events(redis_db)) == 1
    # known closed: the next decisions only look it up
    for _ in range(3):
        closing.note_decision("acme", DECEMBER, clock.now())
        assert closing.in_flight == 0
    assert len(closed_events(redis_db)) == 1


async def test_the_first_activate_after_the_close_instant_closes_the_period_before(
    enforcer_stub: pb_grpc.EnforcerStub,
    sidecar_app: Sidecar,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    """No sweep runs (the test's sidecar sweeps only when asked): the decision itself closes
    November, once, and the decisions after it leave it be."""
    await fill(enforcer_stub, 0, 4)
    clock.set(CLOSES - timedelta(seconds=1))
    await fill(enforcer_stub, 10, 1)  # a December decision before the close instant
    await sidecar_app.closing.settled()
    assert closed_events(redis_db) == []

    clock.set(CLOSES + timedelta(seconds=1))
    await fill(enforcer_stub, 20, 3)
    await sidecar_app.closing.settled()
    (event,) = closed_events(redis_db)
    assert (event[b"period"], event[b"active"]) == (b"2026-11", b"4")
    assert redis_db.hexists(WorkspaceKeys("acme").counts, "2026-11:closed")


async def test_get_usage_answers_closed_and_closed_at(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    await fill(enforcer_stub, 0, 3)
    november = admin_pb.GetUsageRequest(workspace_id="acme", period="2026-11")
    clock.set(CLOSES - timedelta(seconds=1))
    usage = await admin_stub.GetUsage(november, metadata=AUTH)
    assert (usage.closed, usage.HasField("closed_at")) == (False, False)

    clock.set(CLOSES + timedelta(minutes=1))
    usage = await admin_stub.GetUsage(november, metadata=AUTH)
    assert usage.closed
    assert usage.closed_at.ToDatetime(tzinfo=UTC) == CLOSES + timedelta(minutes=1)
    assert usage.usage.active == 3
    assert len(closed_events(redis_db)) == 1  # GetUsage closed it: its event is recorded

    current = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme"), metadata=AUTH
    )
    assert (current.closed, current.usage.period) == (False, "2026-12")
    # a past period without a count is closed by its close instant alone
    october = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme", period="2026-10"), metadata=AUTH
    )
    assert october.closed
    assert october.closed_at.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 1, tzinfo=UTC) + LATENESS

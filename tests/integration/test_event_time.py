"""Event time: ``occurred_at`` decides and counts a contact in the period of the event, in the
workspace's time zone, at that period's limit; late past the lateness, or ahead of the clock
past the skew, it is refused and nothing is written."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, timedelta

import grpc
import pytest
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.calls import fill, subscribe
from tests.support.event_time import (
    CLOSED,
    KEYS,
    LAST_SECONDS,
    NOVEMBER_END,
    activate,
    active_in,
    berlin,
    person,
    refused,
    ts,
)
from tests.support.sidecars import SidecarFactory


async def test_a_late_event_counts_in_its_own_month_at_that_months_limit(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await berlin(admin_stub, clock)
    await fill(enforcer_stub, 0, 2)  # November: 2 of 3
    clock.set(NOVEMBER_END + timedelta(seconds=1))
    raised = await subscribe(admin_stub, packs=1)  # 3,003 from December on
    assert raised.effective_limit == 3_003
    clock.set(NOVEMBER_END + timedelta(seconds=3))

    late = await activate(enforcer_stub, 10, LAST_SECONDS)
    assert (late.reason, late.usage.period) == (pb.REASON_ADMITTED, "2026-11")
    assert (late.usage.active, late.usage.limit) == (3, 3)
    assert late.usage.period_end.ToDatetime(tzinfo=UTC) == NOVEMBER_END
    # November's limit holds for November's events, whatever December's is
    over = await activate(enforcer_stub, 11, LAST_SECONDS)
    assert (over.allowed, over.reason, over.usage.limit) == (False, pb.REASON_LIMIT_REACHED, 3)
    assert await active_in(admin_stub) == 0  # December untouched
    assert await active_in(admin_stub, "2026-11") == 3

    now = await activate(enforcer_stub, 11)
    assert (now.reason, now.usage.period, now.usage.active) == (pb.REASON_ADMITTED, "2026-12", 1)
    assert now.usage.limit == 3_003
    # an event of this period, given its time, is decided as one without
    same = await activate(enforcer_stub, 12, NOVEMBER_END + timedelta(seconds=2))
    assert (same.usage.period, same.usage.active) == ("2026-12", 2)


async def test_an_event_whose_period_closed_is_refused_and_writes_nothing(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    await berlin(admin_stub, clock)
    await fill(enforcer_stub, 0, 1)
    clock.set(NOVEMBER_END + timedelta(seconds=299))  # within MAC_LATENESS_SECONDS (300)
    within = await activate(enforcer_stub, 1, LAST_SECONDS)
    assert (within.reason, within.usage.period) == (pb.REASON_ADMITTED, "2026-11")
    counts = redis_db.hgetall(KEYS.counts)
    members = redis_db.smembers(KEYS.members("2026-11"))

    clock.set(NOVEMBER_END + timedelta(seconds=300))
    details = await refused(
        activate(enforcer_stub, 2, LAST_SECONDS), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert details == CLOSED
    check = pb.CheckRequest(workspace_id="acme", contact=person(2), occurred_at=ts(LAST_SECONDS))
    assert await refused(enforcer_stub.Check(check), grpc.StatusCode.FAILED_PRECONDITION) == CLOSED
    batch = pb.ActivateBatchRequest(
        workspace_id="acme", contacts=[person(3)], occurred_at=ts(LAST_SECONDS - timedelta(days=9))
    )
    assert await refused(enforcer_stub.ActivateBatch(batch), grpc.StatusCode.FAILED_PRECONDITION)
    assert redis_db.hgetall(KEYS.counts) == counts
    assert redis_db.smembers(KEYS.members("2026-11")) == members
    assert await active_in(admin_stub, "2026-11") == 2
    assert await active_in(admin_stub) == 0


async def test_lateness_and_clock_skew_follow_their_settings(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(lateness_seconds=60, clock_skew_seconds=5)
    clock = make_sidecar.clock
    await berlin(make_sidecar.admin(), clock)
    clock.set(NOVEMBER_END + timedelta(seconds=59))
    assert (await activate(stub, 1, LAST_SECONDS)).usage.period == "2026-11"
    clock.set(NOVEMBER_END + timedelta(seconds=60))
    details = await refused(activate(stub, 2, LAST_SECONDS), grpc.StatusCode.FAILED_PRECONDITION)
    assert details == CLOSED

    now = clock.now()
    ahead = await activate(stub, 3, now + timedelta(seconds=5))
    assert ahead.reason == pb.REASON_ADMITTED
    details = await refused(
        activate(stub, 4, now + timedelta(seconds=6)), grpc.StatusCode.INVALID_ARGUMENT
    )
    assert details == (
        "occurred_at: is 6 s in the future; at most 5 s is taken (MAC_CLOCK_SKEW_SECONDS)"
    )
    admin_stub = make_sidecar.admin()
    assert (await active_in(admin_stub), await active_in(admin_stub, "2026-11")) == (1, 1)


async def test_an_event_ahead_of_the_clock_beyond_the_skew_is_invalid(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    within = await activate(enforcer_stub, 1, clock.now() + timedelta(seconds=60))
    assert within.reason == pb.REASON_ADMITTED
    details = await refused(
        activate(enforcer_stub, 2, clock.now() + timedelta(seconds=61)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert details.startswith("occurred_at: is 61 s in the future")
    assert await active_in(admin_stub) == 1


@pytest.mark.parametrize(
    ("seconds", "nanos", "message"),
    [
        (1_795_000_000, -1, "occurred_at: nanos -1 is outside 0..999999999"),
        (1_795_000_000, 1_000_000_000, "occurred_at: nanos 1000000000 is outside 0..999999999"),
        (
            -62_135_596_801,
            0,
            "occurred_at: seconds -62135596801 is outside a Timestamp's range, "
            "0001-01-01 to 9999-12-31",
        ),
        (
            253_402_300_800,
            0,
            "occurred_at: seconds 253402300800 is outside a Timestamp's range, "
            "0001-01-01 to 9999-12-31",
        ),
        (
            -1,
            0,
            "occurred_at: is before 1970-01-01T00:00:00Z: no period that early takes events",
        ),
        (
            -62_135_596_800,
            0,
            "occurred_at: is before 1970-01-01T00:00:00Z: no period that early takes events",
        ),
    ],
)
async def test_an_occurred_at_out_of_range_is_invalid_naming_the_field(
    enforcer_stub: pb_grpc.EnforcerStub,
    redis_db: redis.Redis,
    seconds: int,
    nanos: int,
    message: str,
) -> None:
    bad = Timestamp(seconds=seconds, nanos=nanos)
    calls = [
        enforcer_stub.Activate(
            pb.ActivateRequest(workspace_id="acme", contact=person(1), occurred_at=bad)
        ),
        enforcer_stub.Check(
            pb.CheckRequest(workspace_id="acme", contact=person(1), occurred_at=bad)
        ),
        enforcer_stub.ActivateBatch(
            pb.ActivateBatchRequest(workspace_id="acme", contacts=[person(1)], occurred_at=bad)
        ),
        enforcer_stub.CheckBatch(
            pb.CheckBatchRequest(workspace_id="acme", contacts=[person(1)], occurred_at=bad)
        ),
    ]
    for call in calls:
        assert await refused(call, grpc.StatusCode.INVALID_ARGUMENT) == message
    assert redis_db.keys("*") == []


async def test_batches_decide_in_the_period_of_their_occurred_at(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await berlin(admin_stub, clock, limit=10)
    clock.set(NOVEMBER_END + timedelta(seconds=3))
    fits = await enforcer_stub.CheckBatch(
        pb.CheckBatchRequest(
            workspace_id="acme", contacts=[person(1), person(2)], occurred_at=ts(LAST_SECONDS)
        )
    )
    assert (fits.admitted, fits.usage.period, fits.usage.active) == (2, "2026-11", 0)
    batch = await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(
            workspace_id="acme", contacts=[person(1), person(2)], occurred_at=ts(LAST_SECONDS)
        )
    )
    assert [d.reason for d in batch.decisions] == [pb.REASON_ADMITTED] * 2
    assert (batch.usage.period, batch.usage.active) == ("2026-11", 2)
    assert await active_in(admin_stub, "2026-11") == 2
    assert await active_in(admin_stub) == 0


async def test_each_stream_message_is_decided_at_its_own_occurred_at(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await berlin(admin_stub, clock, limit=10)
    clock.set(NOVEMBER_END + timedelta(seconds=3))

    def message(
        tag: int, n: int, at: Timestamp | None, check: bool = False
    ) -> pb.ActivateStreamRequest:
        if check:
            return pb.ActivateStreamRequest(
                tag=tag,
                check=pb.CheckRequest(workspace_id="acme", contact=person(n), occurred_at=at),
            )
        return pb.ActivateStreamRequest(
            tag=tag,
            activate=pb.ActivateRequest(workspace_id="acme", contact=person(n), occurred_at=at),
        )

    messages = [
        message(1, 1, ts(LAST_SECONDS)),
        message(2, 1, None),
        message(3, 2, ts(LAST_SECONDS), check=True),
        message(4, 3, Timestamp(seconds=1_795_000_000, nanos=-5)),
        message(5, 4, ts(LAST_SECONDS - timedelta(days=40))),
        message(6, 5, ts(LAST_SECONDS)),
    ]
    answers = [a async for a in enforcer_stub.ActivateStream(iter(messages))]
    assert [a.tag for a in answers] == [1, 2, 3, 4, 5, 6]
    first, second, third, bad, closed, last = answers
    assert (first.decision.reason, first.decision.usage.period) == (pb.REASON_ADMITTED, "2026-11")
    assert (second.decision.reason, second.decision.usage.period) == (
        pb.REASON_ADMITTED,
        "2026-12",
    )
    assert (third.decision.reason, third.decision.usage.period) == (
        pb.REASON_WITHIN_LIMIT,
        "2026-11",
    )
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad.error.message == "occurred_at: nanos -5 is outside 0..999999999"
    assert closed.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert closed.error.message == "occurred_at: period 2026-10 is closed"
    assert (last.decision.usage.period, last.decision.usage.active) == ("2026-11", 2)
    assert await active_in(admin_stub, "2026-11") == 2
    assert await active_in(admin_stub) == 1


async def test_the_warm_path_never_answers_a_late_event_from_the_current_period(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(warm_seconds=60.0)
    await berlin(make_sidecar.admin(), make_sidecar.clock)
    make_sidecar.clock.set(NOVEMBER_END + timedelta(seconds=3))
    assert (await activate(stub, 1)).reason == pb.REASON_ADMITTED  # December
    warm = await activate(stub, 1)
    assert (warm.reason, warm.from_local_record) == (pb.REASON_ALREADY_ACTIVE, True)
    in_period = await activate(stub, 1, NOVEMBER_END + timedelta(seconds=1))
    assert (in_period.reason, in_period.from_local_record) == (pb.REASON_ALREADY_ACTIVE, True)
    # November's: the record of December does not know it
    late = await activate(stub, 1, LAST_SECONDS)
    assert (late.reason, late.from_local_record) == (pb.REASON_ADMITTED, False)
    assert late.usage.period == "2026-11"
    again = await activate(stub, 1)
    assert (again.reason, again.usage.period) == (pb.REASON_ALREADY_ACTIVE, "2026-12")


async def test_a_closed_marker_refuses_the_period_and_writes_nothing(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    await berlin(admin_stub, clock)
    await fill(enforcer_stub, 0, 1)
    redis_db.hset(KEYS.counts, "2026-11:closed", str(int(NOVEMBER_END.timestamp() * 1000)))
    counts = redis_db.hgetall(KEYS.counts)
    clock.set(NOVEMBER_END + timedelta(seconds=3))  # within the lateness: the marker decides
    details = await refused(
        activate(enforcer_stub, 5, LAST_SECONDS), grpc.StatusCode.FAILED_PRECONDITION
    )
    assert details == CLOSED
    assert redis_db.hgetall(KEYS.counts) == counts
    assert redis_db.scard(KEYS.members("2026-11")) == 1
    # December is open
    assert (await activate(enforcer_stub, 5)).usage.period == "2026-12"


async def test_concurrent_late_and_current_events_each_count_in_their_own_period(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await berlin(admin_stub, clock, limit=10)
    clock.set(NOVEMBER_END + timedelta(seconds=3))
    decisions = await asyncio.gather(
        *(activate(enforcer_stub, n, LAST_SECONDS if n % 2 else None) for n in range(40))
    )
    for n, decision in enumerate(decisions):
        assert decision.usage.period == ("2026-11" if n % 2 else "2026-12")
    admitted = Counter(d.usage.period for d in decisions if d.reason == pb.REASON_ADMITTED)
    assert admitted == {"2026-11": 10, "2026-12": 10}
    assert await active_in(admin_stub, "2026-11") == 10
    assert await active_in(admin_stub) == 10

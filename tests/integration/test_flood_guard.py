"""The flood guard: past a subscription's new_per_minute new contacts in a sliding minute, HOLD
denies the new ones with RATE_LIMITED and FLAG admits them, each recording FLOOD_DETECTED
once per minute of flood; through the real services."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from prometheus_client import REGISTRY

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.calls import (
    activate,
    activate_concurrently,
    kinds,
    no_more_events,
    read_events,
    subscribe,
)
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory

HOLD = admin_pb.FloodGuard.ACTION_HOLD
FLAG = admin_pb.FloodGuard.ACTION_FLAG


def guard(rate: int, action: int = HOLD) -> admin_pb.FloodGuard:
    return admin_pb.FloodGuard(new_per_minute=rate, action=action)  # type: ignore[arg-type]


def flood_denials() -> float:
    return REGISTRY.get_sample_value("mac_flood_denials_total") or 0.0


async def usage(admin_stub: admin_grpc.AdminStub) -> admin_pb.GetUsageResponse:
    response: admin_pb.GetUsageResponse = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme"), metadata=AUTH
    )
    return response


async def get(admin_stub: admin_grpc.AdminStub) -> admin_pb.Subscription:
    sub: admin_pb.Subscription = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
    )
    return sub


async def test_hold_admits_5_a_minute_and_denies_the_rest(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    sub = await subscribe(admin_stub, plan="pro", flood_guard=guard(5))
    assert (sub.flood_guard.new_per_minute, sub.flood_guard.action) == (5, HOLD)
    before = flood_denials()
    decisions = [await activate(enforcer_stub, n) for n in range(8)]
    assert [d.reason for d in decisions] == [pb.REASON_ADMITTED] * 5 + [pb.REASON_RATE_LIMITED] * 3
    held = decisions[5]
    assert (held.allowed, held.shadow_denied, held.usage.active) == (False, False, 5)
    assert flood_denials() == before + 3
    # an active contact is never held
    again = await activate(enforcer_stub, 2)
    assert (again.allowed, again.reason) == (True, pb.REASON_ALREADY_ACTIVE)
    # nor an exempt one
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(
            workspace_id="acme", contacts=[pb.Contact(email="p100@example.com")], exempt=True
        ),
        metadata=AUTH,
    )
    exempt = await activate(enforcer_stub, 100)
    assert (exempt.allowed, exempt.reason) == (True, pb.REASON_EXEMPT)
    # half a minute on, the first five are still in the minute
    clock.advance(timedelta(seconds=30))
    assert (await activate(enforcer_stub, 8)).reason == pb.REASON_RATE_LIMITED
    # a minute on, they left it
    clock.advance(timedelta(seconds=30))
    assert [(await activate(enforcer_stub, n)).reason for n in range(9, 15)] == [
        pb.REASON_ADMITTED
    ] * 5 + [pb.REASON_RATE_LIMITED]
    report = await usage(admin_stub)
    assert report.usage.active == 10
    assert (report.flood_guard.new_per_minute, report.flood_guard.action) == (5, HOLD)
    # the last flood: the first contact held in the second minute
    assert report.last_flood_at.ToDatetime() == clock.now().replace(tzinfo=None)


async def test_check_answers_rate_limited_and_counts_nothing(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(2))
    before = flood_denials()
    check = await enforcer_stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(email="p0@example.com"))
    )
    assert check.reason == pb.REASON_WITHIN_LIMIT
    await activate(enforcer_stub, 0)
    await activate(enforcer_stub, 1)
    check = await enforcer_stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(email="p2@example.com"))
    )
    assert (check.allowed, check.reason) == (False, pb.REASON_RATE_LIMITED)
    assert flood_denials() == before
    assert not (await usage(admin_stub)).HasField("last_flood_at")


async def test_check_batch_counts_rate_limited_as_denied(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(3))
    await activate(enforcer_stub, 0)
    contacts = [pb.Contact(email=f"p{n}@example.com") for n in range(5)]
    response = await enforcer_stub.CheckBatch(
        pb.CheckBatchRequest(workspace_id="acme", contacts=contacts)
    )
    assert [d.reason for d in response.decisions] == [pb.REASON_ALREADY_ACTIVE] + [
        pb.REASON_WITHIN_LIMIT
    ] * 2 + [pb.REASON_RATE_LIMITED] * 2
    assert (response.already_active, response.admitted, response.denied, response.fits) == (
        1,
        2,
        2,
        False,
    )


async def test_activate_batch_holds_past_the_rate(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(4))
    before = flood_denials()
    contacts = [pb.Contact(email=f"p{n}@example.com") for n in range(10)]
    response = await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts)
    )
    assert [d.allowed for d in response.decisions] == [True] * 4 + [False] * 6
    assert response.usage.active == 4
    assert flood_denials() == before + 6


async def test_flag_admits_all_and_records_one_flood_per_minute(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(3, FLAG))
    before = flood_denials()
    decisions = [await activate(enforcer_stub, n) for n in range(6)]
    assert all(d.allowed and d.reason == pb.REASON_ADMITTED for d in decisions)
    clock.advance(timedelta(seconds=20))
    for n in range(6, 9):
        await activate(enforcer_stub, n)
    (event,) = await read_events(admin_stub, 1)
    assert kinds([event]) == [("FLOOD_DETECTED", 0)]
    assert (event.active, event.limit, event.period) == (3, 3, decisions[0].usage.period)
    assert await no_more_events(admin_stub, event.id)
    # the next minute: the three of 20 s are still in the window, a flood again
    clock.advance(timedelta(seconds=45))
    await activate(enforcer_stub, 9)
    events = await read_events(admin_stub, 2)
    assert kinds(events) == [("FLOOD_DETECTED", 0)] * 2
    assert events[1].at.ToDatetime() == clock.now().replace(tzinfo=None)
    assert flood_denials() == before
    assert (await usage(admin_stub)).usage.active == 10


async def test_shadow_mode_allows_past_the_rate_uncounted(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="pro", shadow_mode=True, flood_guard=guard(1))
    before = flood_denials()
    await activate(enforcer_stub, 0)
    past = await activate(enforcer_stub, 1)
    assert (past.allowed, past.reason, past.shadow_denied, past.usage.active) == (
        True,
        pb.REASON_RATE_LIMITED,
        True,
        1,
    )
    assert flood_denials() == before


async def test_two_sidecars_admit_exactly_the_rate(make_sidecar: SidecarFactory) -> None:
    stubs = [await make_sidecar(), await make_sidecar()]
    await subscribe(make_sidecar.admin(), plan="pro", flood_guard=guard(50))
    contacts = [pb.Contact(email=f"c{n}@example.com") for n in range(200)]
    decisions = await activate_concurrently(stubs, "acme", contacts)
    assert Counter(d.reason for d in decisions) == {
        pb.REASON_ADMITTED: 50,
        pb.REASON_RATE_LIMITED: 150,
    }
    assert (await usage(make_sidecar.admin())).usage.active == 50
    (event,) = await read_events(make_sidecar.admin(), 1)
    assert kinds([event]) == [("FLOOD_DETECTED", 0)]


# --- flood_guard on the subscription ----------------------------------------------------------


async def test_flood_guard_is_changed_like_the_other_fields(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    assert not (await get(admin_stub)).HasField("flood_guard")  # the default plan: none
    await subscribe(admin_stub, plan="pro", packs=1, flood_guard=guard(100))
    assert (await get(admin_stub)).flood_guard == guard(100)
    # without a mask, a field left unset is kept; a guard set replaces the guard
    await subscribe(admin_stub, packs=2)
    assert (await get(admin_stub)).flood_guard == guard(100)
    await subscribe(admin_stub, flood_guard=guard(7, FLAG))
    sub = await get(admin_stub)
    assert (sub.packs, sub.flood_guard) == (2, guard(7, FLAG))
    # named in the mask and left unset: cleared
    await subscribe(admin_stub, update_mask=FieldMask(paths=["flood_guard"]))
    sub = await get(admin_stub)
    assert (sub.packs, sub.HasField("flood_guard")) == (2, False)
    await subscribe(
        admin_stub, flood_guard=guard(9), packs=3, update_mask=FieldMask(paths=["flood_guard"])
    )
    sub = await get(admin_stub)
    assert (sub.packs, sub.flood_guard) == (2, guard(9))
    # "*" replaces the whole subscription: the guard left unset is cleared
    await subscribe(admin_stub, plan="pro", update_mask=FieldMask(paths=["*"]))
    assert not (await get(admin_stub)).HasField("flood_guard")
    assert not (await usage(admin_stub)).HasField("flood_guard")


async def test_clearing_the_guard_admits_again(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(1))
    await activate(enforcer_stub, 0)
    assert (await activate(enforcer_stub, 1)).reason == pb.REASON_RATE_LIMITED
    await subscribe(admin_stub, update_mask=FieldMask(paths=["flood_guard"]))
    assert (await activate(enforcer_stub, 1)).reason == pb.REASON_ADMITTED


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (guard(0), "flood_guard.new_per_minute"),
        (guard(1_000_001), "flood_guard.new_per_minute"),
        (guard(-5), "flood_guard.new_per_minute"),
        (admin_pb.FloodGuard(new_per_minute=10), "flood_guard.action"),
        (guard(10, 9), "flood_guard.action"),  # no such action
    ],
)
async def test_a_bad_flood_guard_is_refused_naming_its_field(
    admin_stub: admin_grpc.AdminStub, bad: admin_pb.FloodGuard, field: str
) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(10))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await subscribe(admin_stub, flood_guard=bad)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}:")
    assert (await get(admin_stub)).flood_guard == guard(10)


async def test_the_bounds_are_taken(admin_stub: admin_grpc.AdminStub) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(1_000_000, FLAG))
    assert (await get(admin_stub)).flood_guard.new_per_minute == 1_000_000
    await subscribe(admin_stub, flood_guard=guard(1))
    assert (await get(admin_stub)).flood_guard.new_per_minute == 1


async def test_a_sub_path_of_the_guard_is_not_a_field_to_change(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    await subscribe(admin_stub, plan="pro", flood_guard=guard(10))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await subscribe(
            admin_stub,
            flood_guard=guard(20),
            update_mask=FieldMask(paths=["flood_guard.new_per_minute"]),
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("update_mask:")

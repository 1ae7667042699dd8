"""The overage allowance: new contacts beyond the limit admitted up to limit + floor(limit x
overage_percent / 100), counted apart and billed as overage; through the real services."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import grpc
import pytest
import redis
from google.protobuf.field_mask_pb2 import FieldMask
from prometheus_client import REGISTRY

from sidecar.domain.clock import ManualClock
from sidecar.domain.contact import ContactFields
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from tests.support.calls import (
    activate,
    activate_concurrently,
    fill,
    kinds,
    no_more_events,
    read_events,
    subscribe,
)
from tests.support.commands import cli
from tests.support.constants import ADMIN_TOKEN, AUTH
from tests.support.sidecars import SidecarFactory


def overage_admissions() -> float:
    return REGISTRY.get_sample_value("mac_overage_admissions_total") or 0.0


async def usage(admin_stub: admin_grpc.AdminStub, period: str = "") -> admin_pb.GetUsageResponse:
    response: admin_pb.GetUsageResponse = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme", period=period), metadata=AUTH
    )
    return response


async def test_limit_10_with_20_percent_admits_12_then_denies(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    sub = await subscribe(admin_stub, plan="enterprise", custom_limit=10, overage_percent=20)
    assert (sub.effective_limit, sub.overage_percent) == (10, 20)
    before = overage_admissions()
    decisions = [await activate(enforcer_stub, n) for n in range(13)]
    assert [d.reason for d in decisions[:10]] == [pb.REASON_ADMITTED] * 10
    assert not any(d.overage for d in decisions[:10])
    for d in decisions[10:12]:
        assert (d.allowed, d.reason, d.overage) == (True, pb.REASON_ADMITTED, True)
    assert [d.usage.overage for d in decisions[9:12]] == [0, 1, 2]
    denied = decisions[12]
    assert not denied.allowed
    assert (denied.reason, denied.overage) == (pb.REASON_LIMIT_REACHED, False)
    assert (denied.usage.active, denied.usage.limit, denied.usage.overage) == (12, 10, 2)
    assert denied.usage.remaining == 0
    # an admitted contact stays admitted, without counting again
    again = await activate(enforcer_stub, 11)
    assert (again.reason, again.overage, again.usage.overage) == (
        pb.REASON_ALREADY_ACTIVE,
        False,
        2,
    )
    assert overage_admissions() == before + 2
    report = await usage(admin_stub)
    assert (report.usage.active, report.usage.overage) == (12, 2)


async def test_overage_started_is_recorded_once_at_the_first_overage_admission(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=10, overage_percent=20)
    await fill(enforcer_stub, 0, 10)
    for n in range(10, 14):
        await activate(enforcer_stub, n)
    events = await read_events(admin_stub, 4)
    assert kinds(events) == [
        ("THRESHOLD_CROSSED", 80),
        ("THRESHOLD_CROSSED", 100),
        ("OVERAGE_STARTED", 0),
        ("LIMIT_REACHED", 0),
    ]
    started = events[2]
    assert (started.active, started.limit, started.period) == (11, 10, events[0].period)
    assert await no_more_events(admin_stub, events[-1].id)


async def test_the_trial_comes_first_then_overage_applies(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    # starter's next plan has a trial: the first contact over the limit starts it
    await subscribe(admin_stub, plan="starter", platform_version="7.0.0", overage_percent=10)
    await fill(enforcer_stub, 0, 100)
    started = await activate(enforcer_stub, 100)
    assert (started.reason, started.overage) == (pb.REASON_TRIAL_STARTED, False)
    assert started.usage.overage == 0
    # the trial's limit applies while it runs, not the overage
    assert (await activate(enforcer_stub, 101)).overage is False


async def test_a_trial_granted_before_leaves_the_overage_to_apply(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, redis_db: redis.Redis
) -> None:
    await subscribe(admin_stub, plan="starter", platform_version="7.0.0", overage_percent=2)
    # the trial of this major was granted (and has ended) before
    redis_db.hset("mac:{acme}:trial", "granted:pro:7", 1)
    await fill(enforcer_stub, 0, 100)
    first = await activate(enforcer_stub, 100)
    assert (first.reason, first.overage, first.usage.limit) == (pb.REASON_ADMITTED, True, 100)
    assert (await activate(enforcer_stub, 101)).overage
    assert (await activate(enforcer_stub, 102)).reason == pb.REASON_LIMIT_REACHED


async def test_check_answers_within_limit_with_the_overage_mark_and_counts_nothing(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=10, overage_percent=20)
    await fill(enforcer_stub, 0, 10)
    before = overage_admissions()
    check = await enforcer_stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(email="new@example.com"))
    )
    assert (check.allowed, check.reason, check.overage) == (True, pb.REASON_WITHIN_LIMIT, True)
    assert (check.usage.active, check.usage.overage) == (10, 0)
    assert overage_admissions() == before
    assert (await usage(admin_stub)).usage.overage == 0


async def test_check_batch_counts_overage_apart(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=10, overage_percent=20)
    await fill(enforcer_stub, 0, 8)
    contacts = [pb.Contact(email=f"p{n}@example.com") for n in range(6, 14)]
    # 2 already counted, 2 within the limit, 2 in overage (one twice), 2 denied
    contacts.insert(5, contacts[4])
    response = await enforcer_stub.CheckBatch(
        pb.CheckBatchRequest(workspace_id="acme", contacts=contacts)
    )
    assert (response.already_active, response.admitted, response.overage, response.denied) == (
        3,
        2,
        2,
        2,
    )
    assert not response.fits
    assert [d.overage for d in response.decisions] == [False] * 4 + [True, False, True] + [
        False
    ] * 2
    assert response.usage.overage == 0


async def test_activate_batch_admits_up_to_the_allowance(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=10, overage_percent=20)
    before = overage_admissions()
    contacts = [pb.Contact(email=f"p{n}@example.com") for n in range(15)]
    response = await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts)
    )
    assert [d.overage for d in response.decisions] == [False] * 10 + [True] * 2 + [False] * 3
    assert [d.reason for d in response.decisions[10:]] == [pb.REASON_ADMITTED] * 2 + [
        pb.REASON_LIMIT_REACHED
    ] * 3
    assert (response.usage.active, response.usage.overage) == (12, 2)
    assert overage_admissions() == before + 2


async def test_concurrent_activations_admit_exactly_limit_and_allowance(
    make_sidecar: SidecarFactory,
) -> None:
    stubs = [await make_sidecar(), await make_sidecar()]
    await subscribe(make_sidecar.admin(), plan="enterprise", custom_limit=50, overage_percent=10)
    contacts = [pb.Contact(email=f"c{n}@example.com") for n in range(200)]
    decisions = await activate_concurrently(stubs, "acme", contacts)
    reasons = Counter((d.reason, d.overage) for d in decisions)
    assert reasons == {
        (pb.REASON_ADMITTED, False): 50,
        (pb.REASON_ADMITTED, True): 5,
        (pb.REASON_LIMIT_REACHED, False): 145,
    }
    report = await usage(make_sidecar.admin())
    assert (report.usage.active, report.usage.overage) == (55, 5)


async def test_a_floor_of_zero_admits_no_overage(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=3, overage_percent=20)
    await fill(enforcer_stub, 0, 3)  # floor(3 x 20 / 100) = 0
    assert (await activate(enforcer_stub, 3)).reason == pb.REASON_LIMIT_REACHED


async def test_shadow_mode_allows_past_the_allowance(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(
        admin_stub, plan="enterprise", custom_limit=10, overage_percent=10, shadow_mode=True
    )
    await fill(enforcer_stub, 0, 10)
    over = await activate(enforcer_stub, 10)
    assert (over.reason, over.overage, over.shadow_denied) == (pb.REASON_ADMITTED, True, False)
    past = await activate(enforcer_stub, 11)
    assert (past.allowed, past.reason, past.shadow_denied, past.overage) == (
        True,
        pb.REASON_LIMIT_REACHED,
        True,
        False,
    )
    assert (past.usage.active, past.usage.overage) == (11, 1)


async def test_a_past_period_keeps_its_overage(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=10, overage_percent=20)
    first = await activate(enforcer_stub, 0)
    await fill(enforcer_stub, 1, 9)
    await activate(enforcer_stub, 10)
    clock.advance(timedelta(days=32))
    fresh = await activate(enforcer_stub, 0)
    assert (fresh.usage.active, fresh.usage.overage) == (1, 0)
    past = await usage(admin_stub, first.usage.period)
    assert (past.usage.active, past.usage.limit, past.usage.overage) == (11, 10, 1)


async def test_the_count_records_limit_plan_and_packs(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, redis_db: redis.Redis
) -> None:
    await subscribe(admin_stub, plan="pro", packs=2, overage_percent=5)
    decision = await activate(enforcer_stub, 0)
    counts = redis_db.hgetall("mac:{acme}:counts")
    key = decision.usage.period
    assert counts[f"{key}:limit".encode()] == b"6100"
    assert counts[f"{key}:plan".encode()] == b"pro"
    assert counts[f"{key}:packs".encode()] == b"2"


# --- overage_percent on the subscription ------------------------------------------------------


async def get(admin_stub: admin_grpc.AdminStub) -> admin_pb.Subscription:
    sub: admin_pb.Subscription = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
    )
    return sub


async def test_overage_percent_is_changed_like_the_other_fields(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    assert (await get(admin_stub)).overage_percent == 0  # the default plan: none
    await subscribe(admin_stub, plan="pro", packs=1, overage_percent=15)
    assert (await get(admin_stub)).overage_percent == 15
    # without a mask, a field left unset is kept
    await subscribe(admin_stub, packs=2)
    assert ((await get(admin_stub)).packs, (await get(admin_stub)).overage_percent) == (2, 15)
    await subscribe(admin_stub, overage_percent=30)
    assert ((await get(admin_stub)).packs, (await get(admin_stub)).overage_percent) == (2, 30)
    # named in the mask and left unset: cleared
    await subscribe(admin_stub, update_mask=FieldMask(paths=["overage_percent"]))
    assert ((await get(admin_stub)).packs, (await get(admin_stub)).overage_percent) == (2, 0)
    await subscribe(
        admin_stub, overage_percent=40, packs=3, update_mask=FieldMask(paths=["overage_percent"])
    )
    assert ((await get(admin_stub)).packs, (await get(admin_stub)).overage_percent) == (2, 40)
    # "*" replaces the whole subscription: what is left unset is cleared
    await subscribe(admin_stub, plan="pro", update_mask=FieldMask(paths=["*"]))
    assert ((await get(admin_stub)).packs, (await get(admin_stub)).overage_percent) == (0, 0)


@pytest.mark.parametrize("percent", [-1, 101])
async def test_an_overage_percent_outside_0_to_100_is_refused(
    admin_stub: admin_grpc.AdminStub, percent: int
) -> None:
    await subscribe(admin_stub, plan="pro", overage_percent=10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await subscribe(admin_stub, overage_percent=percent)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("overage_percent:")
    assert (await get(admin_stub)).overage_percent == 10


async def test_lowering_the_allowance_denies_new_contacts_and_keeps_the_overage(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=10, overage_percent=20)
    await fill(enforcer_stub, 0, 10)
    assert (await activate(enforcer_stub, 10)).overage
    await subscribe(admin_stub, overage_percent=0)
    denied = await activate(enforcer_stub, 11)
    assert (denied.reason, denied.usage.overage) == (pb.REASON_LIMIT_REACHED, 1)
    assert (await activate(enforcer_stub, 10)).reason == pb.REASON_ALREADY_ACTIVE


# --- the CLI ------------------------------------------------------------------------------------


async def test_the_cli_sets_the_allowance_and_shows_the_overage(sidecar_app: Sidecar) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    set_ = ("subscription", "set", "acme", "--plan", "enterprise", "--custom-limit", "10")
    code, out, _ = await cli(*set_, "--overage-percent", "20", *conn)
    assert code == 0
    assert "overage       20%: up to 12 when no trial applies" in out
    filled = [ContactFields(id=f"c{n}") for n in range(10)]
    await sidecar_app.enforcer.activate_batch("acme", filled)
    code, out, _ = await cli("check-batch", "acme", "id=c0", "id=x1", "id=x2", "id=x3", conn[0])
    assert code == 1
    assert "would count      0  and 2 in overage" in out
    assert "usage now        10 of 10; after it 12" in out
    code, out, _ = await cli("activate", "acme", "--id", "x1", conn[0])
    assert code == 0
    assert "allowed: ADMITTED" in out
    assert "  overage: admitted beyond the limit, under the overage allowance" in out
    assert "  overage      1 admitted beyond the limit" in out
    code, out, _ = await cli("usage", "acme", *conn)
    assert "overage     1 admitted beyond the limit" in out
    code, out, _ = await cli("subscription", "set", "acme", "--clear", "overage-percent", *conn)
    assert "overage       none (denies at the limit)" in out
    code, _, err = await cli("subscription", "set", "acme", "--overage-percent", "101", *conn)
    assert (code, err.strip()) == (
        2,
        "error: INVALID_ARGUMENT: overage_percent: must be 0 to 100 percent (got 101)",
    )

"""Subscriptions, MAC packs, fair-usage trials and shadow mode, through the real services."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.calls import activate, fill, subscribe
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory


async def test_subscription_is_stored_and_read_back(admin_stub: admin_grpc.AdminStub) -> None:
    starts = datetime(2026, 11, 1, tzinfo=UTC)
    request = admin_pb.SetSubscriptionRequest(
        workspace_id="acme",
        plan="pro",
        packs=2,
        timezone="Europe/Berlin",
        platform_version="7.3.0",
        shadow_mode=True,
    )
    request.starts_at.FromDatetime(starts)
    set_ = await admin_stub.SetSubscription(request, metadata=AUTH)
    got = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
    )
    assert set_ == got
    assert got.plan == "pro"
    assert got.packs == 2
    assert got.effective_limit == 6_100
    assert got.timezone == "Europe/Berlin"
    assert got.starts_at.ToDatetime(tzinfo=UTC) == starts
    assert got.platform_version == "7.3.0"
    assert got.shadow_mode
    assert not got.is_default
    assert (got.trial_plan, got.trial_limit) == ("enterprise", 50_000)


async def test_a_workspace_without_subscription_is_on_the_default_plan(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    got = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="nobody"), metadata=AUTH
    )
    assert got.is_default
    assert got.plan == "enterprise"  # the test settings' MAC_DEFAULT_PLAN
    assert got.effective_limit == 100  # MAC_DEFAULT_LIMIT


@pytest.mark.parametrize(
    ("fields", "code", "message"),
    [
        (
            {"plan": "pro", "packs": 6},
            grpc.StatusCode.FAILED_PRECONDITION,
            "pro allows 0 to 5 MAC packs",
        ),
        (
            {"plan": "starter", "packs": 1},
            grpc.StatusCode.FAILED_PRECONDITION,
            "starter allows no MAC packs",
        ),
        (
            {"plan": "pro", "custom_limit": 9},
            grpc.StatusCode.FAILED_PRECONDITION,
            "pro has no custom limit",
        ),
        ({"plan": "gold"}, grpc.StatusCode.INVALID_ARGUMENT, "plan: unknown plan 'gold'"),
        ({"plan": "pro", "packs": -1}, grpc.StatusCode.INVALID_ARGUMENT, "packs:"),
        (
            {"plan": "pro", "timezone": "Mars/Olympus"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "timezone:",
        ),
        (
            {"plan": "pro", "platform_version": "seven"},
            grpc.StatusCode.INVALID_ARGUMENT,
            "platform_version:",
        ),
    ],
)
async def test_bad_subscriptions_are_refused_and_change_nothing(
    admin_stub: admin_grpc.AdminStub, fields: dict[str, Any], code: grpc.StatusCode, message: str
) -> None:
    await subscribe(admin_stub, plan="pro", packs=1)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await subscribe(admin_stub, **fields)
    assert caught.value.code() == code
    assert message in (caught.value.details() or "")
    got = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
    )
    assert (got.plan, got.packs) == ("pro", 1)


async def test_packs_take_effect_at_once_and_never_uncount(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=3)
    await fill(enforcer_stub, 0, 3)
    assert (await activate(enforcer_stub, 3)).reason == pb.REASON_LIMIT_REACHED
    await subscribe(admin_stub, plan="enterprise", custom_limit=3, packs=1)
    admitted = await activate(enforcer_stub, 3)
    assert admitted.reason == pb.REASON_ADMITTED
    assert admitted.usage.limit == 3_003
    await subscribe(admin_stub, plan="enterprise", custom_limit=2, packs=0)
    lowered = await activate(enforcer_stub, 0)
    assert lowered.reason == pb.REASON_ALREADY_ACTIVE
    assert lowered.usage.active == 4
    assert lowered.usage.limit == 2
    assert (await activate(enforcer_stub, 99)).reason == pb.REASON_LIMIT_REACHED


async def test_trial_path_starter_to_pro_to_enterprise_across_majors(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="starter", platform_version="6.4.0")
    await fill(enforcer_stub, 0, 100)
    started = await activate(enforcer_stub, 100)
    assert started.allowed
    assert started.reason == pb.REASON_TRIAL_STARTED
    assert started.usage.limit == 15_000
    assert started.usage.trial_ends_at.ToDatetime(tzinfo=UTC) == clock.now() + timedelta(days=30)
    assert (await activate(enforcer_stub, 101)).reason == pb.REASON_ADMITTED

    clock.advance(timedelta(days=31))  # trial over, and a new month: December
    await fill(enforcer_stub, 0, 100)
    denied = await activate(enforcer_stub, 100)
    assert denied.reason == pb.REASON_LIMIT_REACHED  # one trial per major release
    assert not denied.usage.HasField("trial_ends_at")

    await subscribe(admin_stub, plan="starter", platform_version="7.0.0")
    assert (await activate(enforcer_stub, 100)).reason == pb.REASON_TRIAL_STARTED  # a new major

    clock.advance(timedelta(days=31))  # January
    await subscribe(admin_stub, plan="pro", packs=0, platform_version="7.0.0")
    await fill(enforcer_stub, 0, 100)
    to_enterprise = await activate(enforcer_stub, 100)
    assert to_enterprise.reason == pb.REASON_TRIAL_STARTED
    assert to_enterprise.usage.limit == 50_000
    clock.advance(timedelta(days=1))
    await subscribe(admin_stub, plan="enterprise", custom_limit=100, platform_version="8.0.0")
    clock.advance(timedelta(days=30))  # February: the trial is over
    await fill(enforcer_stub, 0, 100)
    over = await activate(enforcer_stub, 5000)
    assert over.reason == pb.REASON_LIMIT_REACHED  # enterprise has no trial to go to


async def test_trial_end_keeps_active_contacts_and_denies_new_ones(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 10, 1, 1, tzinfo=UTC))  # 31 days: the trial ends in October
    await subscribe(admin_stub, plan="starter", platform_version="7.1.0")
    await fill(enforcer_stub, 0, 100)
    assert (await activate(enforcer_stub, 100)).reason == pb.REASON_TRIAL_STARTED
    await fill(enforcer_stub, 101, 50)
    clock.set(datetime(2026, 10, 31, 1, tzinfo=UTC))  # the trial's end
    still = await activate(enforcer_stub, 120)
    assert still.reason == pb.REASON_ALREADY_ACTIVE
    assert still.usage.limit == 100
    assert still.usage.active == 151
    assert not still.usage.HasField("trial_ends_at")
    assert (await activate(enforcer_stub, 500)).reason == pb.REASON_LIMIT_REACHED


async def test_concurrent_overflow_grants_exactly_one_trial(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar()
    admin_stub = make_sidecar.admin()
    await subscribe(admin_stub, plan="starter", platform_version="7.0.0")
    await fill(stub, 0, 100)
    decisions = await asyncio.gather(*(activate(stub, 1000 + n) for n in range(200)))
    reasons = Counter(d.reason for d in decisions)
    assert reasons[pb.REASON_TRIAL_STARTED] == 1
    assert reasons[pb.REASON_ADMITTED] == 199
    ends = {d.usage.trial_ends_at.seconds for d in decisions}
    assert len(ends) == 1


async def test_check_answers_trial_started_without_starting_it(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="starter")
    await fill(enforcer_stub, 0, 100)
    request = pb.CheckRequest(workspace_id="acme", contact=pb.Contact(email="new@example.com"))
    check = await enforcer_stub.Check(request)
    assert check.allowed
    assert check.reason == pb.REASON_TRIAL_STARTED
    assert check.usage.limit == 100
    again = await enforcer_stub.Check(request)
    assert again.reason == pb.REASON_TRIAL_STARTED
    assert not again.usage.HasField("trial_ends_at")


async def test_shadow_mode_allows_what_it_would_deny(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=2, shadow_mode=True)
    await fill(enforcer_stub, 0, 2)
    shadowed = await activate(enforcer_stub, 2)
    assert shadowed.allowed
    assert shadowed.reason == pb.REASON_LIMIT_REACHED
    assert shadowed.shadow_denied
    assert shadowed.usage.active == 2  # counted as usual: a denial counts nobody
    check = await enforcer_stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(email="p9@example.com"))
    )
    assert check.allowed
    assert check.shadow_denied
    await subscribe(admin_stub, plan="enterprise", custom_limit=2, shadow_mode=False)
    enforced = await activate(enforcer_stub, 2)
    assert not enforced.allowed
    assert not enforced.shadow_denied


async def test_required_subscription_refuses_unknown_workspaces(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(require_subscription=True)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await activate(stub, 1, ws="acmee")  # a typo: no billing state is made
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "workspace acmee has no subscription" in (caught.value.details() or "")
    await subscribe(make_sidecar.admin(), ws="acme", plan="pro")
    assert (await activate(stub, 1, ws="acme")).reason == pb.REASON_ADMITTED

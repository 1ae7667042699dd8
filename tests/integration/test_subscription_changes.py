"""Subscription changes touch only what they name (AIP-134), per-workspace thresholds, and
CheckBatch, the dry run of a batch: through the real services on a real Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
import redis
from google.protobuf.field_mask_pb2 import FieldMask

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import fill, kinds, read_events, subscribe
from tests.support.constants import AUTH

START = datetime(2026, 11, 10, tzinfo=UTC)
# A full subscription, and for each field a value other than the one it has there.
FULL: dict[str, Any] = {
    "plan": "pro",
    "packs": 2,
    "timezone": "Europe/Berlin",
    "platform_version": "7.3.0",
    "shadow_mode": True,
    "default_region": "DE",
    "thresholds": [50, 90],
}
CHANGES: dict[str, Any] = {
    "plan": "enterprise",
    "packs": 1,
    "timezone": "America/Sao_Paulo",
    "platform_version": "8.0.1",
    "shadow_mode": False,
    "default_region": "BR",
    "thresholds": [70],
    "starts_at": datetime(2026, 11, 20, tzinfo=UTC),
}
# What each field reads as once cleared.
CLEARED: dict[str, Any] = {
    "packs": 0,
    "timezone": "UTC",
    "platform_version": "",
    "shadow_mode": False,
    "default_region": "",
    "thresholds": [80, 100],  # the service's MAC_THRESHOLDS
    "starts_at": None,
}


def request(ws: str = "acme", mask: list[str] | None = None, **fields: Any) -> Any:
    starts_at = fields.pop("starts_at", None)
    message = admin_pb.SetSubscriptionRequest(workspace_id=ws, **fields)
    if starts_at is not None:
        message.starts_at.FromDatetime(starts_at)
    if mask is not None:
        message.update_mask.CopyFrom(FieldMask(paths=mask))
    return message


async def change(admin_stub: admin_grpc.AdminStub, **kwargs: Any) -> admin_pb.Subscription:
    sub: admin_pb.Subscription = await admin_stub.SetSubscription(request(**kwargs), metadata=AUTH)
    return sub


def fields_of(sub: admin_pb.Subscription) -> dict[str, Any]:
    return {
        "plan": sub.plan,
        "packs": sub.packs,
        "custom_limit": sub.custom_limit,
        "timezone": sub.timezone,
        "platform_version": sub.platform_version,
        "shadow_mode": sub.shadow_mode,
        "default_region": sub.default_region,
        "thresholds": list(sub.thresholds),
        "starts_at": sub.starts_at.ToDatetime(tzinfo=UTC) if sub.HasField("starts_at") else None,
    }


async def full(admin_stub: admin_grpc.AdminStub) -> dict[str, Any]:
    return fields_of(await change(admin_stub, starts_at=START, **FULL))


@pytest.mark.parametrize("field", sorted(CHANGES))
async def test_a_change_of_one_field_keeps_every_other(
    admin_stub: admin_grpc.AdminStub, field: str
) -> None:
    before = await full(admin_stub)
    after = fields_of(await change(admin_stub, **{field: CHANGES[field]}))
    expected = dict(before, **{field: CHANGES[field]})
    assert after == expected
    stored = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
    )
    assert fields_of(stored) == expected


@pytest.mark.parametrize("field", sorted(CLEARED))
async def test_a_field_named_in_the_mask_without_a_value_is_cleared(
    admin_stub: admin_grpc.AdminStub, field: str
) -> None:
    before = await full(admin_stub)
    after = fields_of(await change(admin_stub, mask=[field]))
    assert after == dict(before, **{field: CLEARED[field]})


async def test_the_mask_limits_the_change_to_what_it_names(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    before = await full(admin_stub)
    after = fields_of(await change(admin_stub, mask=["packs"], packs=4, timezone="Asia/Tokyo"))
    assert after == dict(before, packs=4)


async def test_a_star_mask_replaces_the_whole_subscription(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    await full(admin_stub)
    after = fields_of(await change(admin_stub, mask=["*"], plan="pro", packs=1))
    assert after == dict(CLEARED, plan="pro", packs=1, custom_limit=0)


async def test_a_change_of_packs_alone_keeps_the_month_and_shadow_mode(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    before = await full(admin_stub)
    after = await change(admin_stub, packs=3)
    assert fields_of(after) == dict(before, packs=3)
    assert after.effective_limit == 100 + 3 * 3_000


async def test_an_empty_change_keeps_the_subscription(admin_stub: admin_grpc.AdminStub) -> None:
    before = await full(admin_stub)
    assert fields_of(await change(admin_stub)) == before


async def test_the_first_change_needs_a_plan(admin_stub: admin_grpc.AdminStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await change(admin_stub, ws="newcomer", packs=3)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "newcomer has no subscription yet" in (raised.value.details() or "")
    got = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="newcomer"), metadata=AUTH
    )
    assert got.is_default


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mask": ["packz"]}, "update_mask"),
        ({"mask": ["workspace_id"]}, "update_mask"),
        ({"thresholds": [0]}, "thresholds"),
        ({"thresholds": [1001]}, "thresholds"),
        ({"thresholds": list(range(1, 20))}, "thresholds"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"mask": ["plan"]}, "plan"),
    ],
)
async def test_bad_changes_name_the_field_and_change_nothing(
    admin_stub: admin_grpc.AdminStub, kwargs: dict[str, Any], field: str
) -> None:
    before = await full(admin_stub)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await change(admin_stub, **kwargs)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith(f"{field}:")
    stored = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
    )
    assert fields_of(stored) == before


async def test_concurrent_changes_of_different_fields_all_stay(
    admin_stub: admin_grpc.AdminStub, redis_db: redis.Redis
) -> None:
    await change(admin_stub, plan="enterprise", custom_limit=1000)
    version = int(redis_db.hget(WorkspaceKeys("acme").subscription, "version") or 0)
    # each change sets its own field: none may undo another
    await asyncio.gather(
        change(admin_stub, packs=5),
        change(admin_stub, timezone="Asia/Tokyo"),
        change(admin_stub, platform_version="9.1.0"),
        change(admin_stub, shadow_mode=True),
        change(admin_stub, default_region="FR"),
        change(admin_stub, thresholds=[25]),
    )
    got = fields_of(
        await admin_stub.GetSubscription(
            admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
        )
    )
    assert got == dict(
        got,
        packs=5,
        custom_limit=1000,
        timezone="Asia/Tokyo",
        platform_version="9.1.0",
        shadow_mode=True,
        default_region="FR",
        thresholds=[25],
    )
    assert int(redis_db.hget(WorkspaceKeys("acme").subscription, "version") or 0) == version + 6


async def test_a_workspace_s_thresholds_replace_the_service_s(
    admin_stub: admin_grpc.AdminStub, enforcer_stub: pb_grpc.EnforcerStub
) -> None:
    sub = await subscribe(admin_stub, plan="enterprise", custom_limit=10, thresholds=[30, 60])
    assert (list(sub.thresholds), sub.default_thresholds) == ([30, 60], False)
    await fill(enforcer_stub, 0, 10)
    events = await read_events(admin_stub, 2)
    assert kinds(events) == [("THRESHOLD_CROSSED", 30), ("THRESHOLD_CROSSED", 60)]
    assert [e.active for e in events] == [3, 6]

    other = await subscribe(admin_stub, ws="other", plan="enterprise", custom_limit=10)
    assert (list(other.thresholds), other.default_thresholds) == ([80, 100], True)
    await fill(enforcer_stub, 0, 10, ws="other")
    assert kinds(await read_events(admin_stub, 2, ws="other")) == [
        ("THRESHOLD_CROSSED", 80),
        ("THRESHOLD_CROSSED", 100),
    ]


def contacts(*numbers: int) -> list[pb.Contact]:
    return [pb.Contact(email=f"p{n}@example.com") for n in numbers]


async def check_batch(stub: pb_grpc.EnforcerStub, *numbers: int) -> pb.CheckBatchResponse:
    response: pb.CheckBatchResponse = await stub.CheckBatch(
        pb.CheckBatchRequest(workspace_id="acme", contacts=contacts(*numbers))
    )
    return response


async def test_check_batch_answers_what_the_batch_would_do_and_changes_nothing(
    admin_stub: admin_grpc.AdminStub, enforcer_stub: pb_grpc.EnforcerStub, redis_db: redis.Redis
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=5)
    await fill(enforcer_stub, 0, 2)
    dump_before = {k: redis_db.dump(k) for k in redis_db.keys("*")}
    dry = await check_batch(enforcer_stub, 1, 2, 3, 2, 4, 5, 6)
    assert [d.reason for d in dry.decisions] == [
        pb.REASON_ALREADY_ACTIVE,
        pb.REASON_WITHIN_LIMIT,
        pb.REASON_WITHIN_LIMIT,
        pb.REASON_ALREADY_ACTIVE,  # p2 again: counted once
        pb.REASON_WITHIN_LIMIT,
        pb.REASON_LIMIT_REACHED,
        pb.REASON_LIMIT_REACHED,
    ]
    assert (dry.admitted, dry.already_active, dry.uncounted, dry.denied, dry.fits) == (
        3,
        2,
        0,
        2,
        False,
    )
    assert (dry.usage.active, dry.usage.limit) == (2, 5)
    assert {k: redis_db.dump(k) for k in redis_db.keys("*")} == dump_before

    real = await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts(1, 2, 3, 2, 4, 5, 6))
    )
    expected = [
        pb.REASON_ADMITTED if r == pb.REASON_WITHIN_LIMIT else r
        for r in (d.reason for d in dry.decisions)
    ]
    assert [d.reason for d in real.decisions] == expected
    assert [d.contact_key for d in real.decisions] == [d.contact_key for d in dry.decisions]


async def test_check_batch_that_fits(
    admin_stub: admin_grpc.AdminStub, enforcer_stub: pb_grpc.EnforcerStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=5)
    dry = await check_batch(enforcer_stub, 1, 2, 3)
    assert (dry.admitted, dry.denied, dry.fits) == (3, 0, True)


async def test_check_batch_counts_exempt_and_shadowed_contacts_as_uncounted(
    admin_stub: admin_grpc.AdminStub, enforcer_stub: pb_grpc.EnforcerStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=1, shadow_mode=True)
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(workspace_id="acme", contacts=contacts(9), exempt=True),
        metadata=AUTH,
    )
    dry = await check_batch(enforcer_stub, 9, 1, 2)
    assert [d.reason for d in dry.decisions] == [
        pb.REASON_EXEMPT,
        pb.REASON_WITHIN_LIMIT,
        pb.REASON_LIMIT_REACHED,
    ]
    assert dry.decisions[2].allowed
    assert dry.decisions[2].shadow_denied
    assert (dry.admitted, dry.uncounted, dry.denied, dry.fits) == (1, 2, 0, True)


async def test_check_batch_sees_the_trial_a_batch_would_start(
    admin_stub: admin_grpc.AdminStub, enforcer_stub: pb_grpc.EnforcerStub
) -> None:
    await subscribe(admin_stub, plan="pro")  # 100, then a trial of enterprise at 50,000
    await fill(enforcer_stub, 0, 100)
    dry = await check_batch(enforcer_stub, 5000, 5001)
    assert [d.reason for d in dry.decisions] == [pb.REASON_TRIAL_STARTED, pb.REASON_WITHIN_LIMIT]
    assert (dry.admitted, dry.fits, dry.usage.limit) == (2, True, 100)
    sub = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="acme"), metadata=AUTH
    )
    assert not sub.HasField("trial_ends_at")


@pytest.mark.parametrize("count", [0, 10_001])
async def test_check_batch_has_the_bounds_of_a_batch(
    enforcer_stub: pb_grpc.EnforcerStub, count: int
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await check_batch(enforcer_stub, *range(count))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (raised.value.details() or "").startswith("contacts:")


async def test_a_plan_change_keeps_packs_the_new_plan_must_allow(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    await full(admin_stub)  # pro with 2 packs
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await change(admin_stub, plan="starter")
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "starter allows no MAC packs (got 2)" in (raised.value.details() or "")
    moved = await change(admin_stub, plan="starter", packs=0)
    assert (moved.plan, moved.packs, moved.timezone) == ("starter", 0, "Europe/Berlin")

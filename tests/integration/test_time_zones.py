"""Billing periods in each workspace's time zone, mid-month starts, retention and history."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import redis

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import act
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory

ANA = {"email": "ana@example.com"}


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


async def zone(
    admin_stub: admin_grpc.AdminStub, timezone: str, starts_at: datetime | None = None
) -> None:
    request = admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro", timezone=timezone)
    if starts_at is not None:
        request.starts_at.FromDatetime(starts_at)
    await admin_stub.SetSubscription(request, metadata=AUTH)


async def test_auckland_rolls_over_at_its_own_midnight(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await zone(admin_stub, "Pacific/Auckland")
    clock.set(utc(2026, 11, 30, 10, 59))  # 23:59 on 30 November in Auckland (NZDT, UTC+13)
    november = await act(enforcer_stub, **ANA)
    assert november.usage.period == "2026-11"
    assert november.usage.period_start.ToDatetime(tzinfo=UTC) == utc(2026, 10, 31, 11)
    assert november.usage.period_end.ToDatetime(tzinfo=UTC) == utc(2026, 11, 30, 11)
    clock.set(utc(2026, 11, 30, 11, 0))  # midnight, 1 December in Auckland
    december = await act(enforcer_stub, **ANA)
    assert december.usage.period == "2026-12"
    assert december.reason == pb.REASON_ADMITTED
    assert december.usage.active == 1


async def test_new_york_month_with_a_dst_change(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await zone(admin_stub, "America/New_York")
    # Redis expires member sets by its own clock: test months still ahead of it.
    clock.set(utc(2027, 3, 20))
    march = await act(enforcer_stub, **ANA)
    assert march.usage.period_start.ToDatetime(tzinfo=UTC) == utc(2027, 3, 1, 5)  # EST
    assert march.usage.period_end.ToDatetime(tzinfo=UTC) == utc(2027, 4, 1, 4)  # EDT
    clock.set(utc(2027, 4, 1, 3, 59))  # 23:59 on 31 March in New York
    assert (await act(enforcer_stub, **ANA)).reason == pb.REASON_ALREADY_ACTIVE
    clock.set(utc(2027, 4, 1, 4, 0))
    april = await act(enforcer_stub, **ANA)
    assert (april.usage.period, april.reason) == ("2027-04", pb.REASON_ADMITTED)


async def test_a_subscription_starting_mid_month_starts_a_fresh_period(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    start = utc(2026, 11, 18, 9, 30)
    clock.set(utc(2026, 11, 10))
    await act(enforcer_stub, **ANA)
    await act(enforcer_stub, email="bob@example.com")
    await zone(admin_stub, "UTC", starts_at=start)
    before = await act(enforcer_stub, **ANA)
    assert before.usage.active == 2  # before the start: the month's period, ending at it
    assert before.usage.period_end.ToDatetime(tzinfo=UTC) == start
    clock.set(utc(2026, 11, 20))
    fresh = await act(enforcer_stub, **ANA)
    assert fresh.reason == pb.REASON_ADMITTED
    assert fresh.usage.active == 1
    assert fresh.usage.period == "2026-11"
    assert fresh.usage.period_start.ToDatetime(tzinfo=UTC) == start
    assert fresh.usage.period_end.ToDatetime(tzinfo=UTC) == utc(2026, 12, 1)
    clock.set(utc(2026, 12, 1))
    december = await act(enforcer_stub, **ANA)
    assert (december.usage.period, december.reason) == ("2026-12", pb.REASON_ADMITTED)
    assert december.usage.period_start.ToDatetime(tzinfo=UTC) == utc(2026, 12, 1)


async def test_another_sidecar_follows_a_changed_time_zone(
    make_sidecar: SidecarFactory, clock: ManualClock
) -> None:
    one = await make_sidecar()
    other = await make_sidecar()
    clock.set(utc(2026, 11, 30, 12))  # still November in UTC, already December in Auckland
    assert (await act(one, **ANA)).usage.period == "2026-11"  # one caches UTC for acme
    await zone(make_sidecar.admin(), "Pacific/Auckland")  # set through the other sidecar
    assert (await act(other, **ANA)).usage.period == "2026-12"
    switched = await act(one, **ANA)
    assert switched.usage.period == "2026-12"
    assert switched.reason == pb.REASON_ALREADY_ACTIVE


async def test_old_member_sets_expire_by_themselves(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    await zone(admin_stub, "Pacific/Auckland")
    clock.set(utc(2026, 11, 10))
    await act(enforcer_stub, **ANA)
    members = WorkspaceKeys("acme").members("2026-11")
    expires = datetime.fromtimestamp(redis_db.pexpiretime(members) / 1000, UTC)
    assert expires == utc(2027, 1, 31, 11)  # 1 February 00:00 in Auckland: two more periods
    clock.set(utc(2027, 2, 10))
    redis_db.pexpireat(members, 1)  # what Redis does by itself when its clock gets there
    assert not redis_db.exists(members)
    reply = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme", period="2026-11"), metadata=AUTH
    )
    assert reply.usage.active == 1  # the count outlives the members


async def test_history_keeps_two_years_of_counts(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    month = utc(2024, 10, 15)
    for n in range(26):
        clock.set(month)
        await enforcer_stub.ActivateBatch(
            pb.ActivateBatchRequest(
                workspace_id="acme",
                contacts=[pb.Contact(id=f"c{i}") for i in range(n % 7 + 1)],
            )
        )
        month = (month + timedelta(days=32)).replace(day=15)
    reply = await admin_stub.GetUsage(admin_pb.GetUsageRequest(workspace_id="acme"), metadata=AUTH)
    assert reply.usage.period == "2026-11"
    assert len(reply.history) == 25
    assert reply.history[0].period == "2026-10"
    assert reply.history[-1].period == "2024-10"
    assert [h.active for h in reply.history[:3]] == [4, 3, 2]  # n % 7 + 1 for n = 24, 23, 22
    assert reply.history[-1].limit == 100


async def test_paging_25000_contacts_while_admissions_go_on(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await admin_stub.SetSubscription(
        admin_pb.SetSubscriptionRequest(
            workspace_id="acme", plan="enterprise", custom_limit=50_000
        ),
        metadata=AUTH,
    )
    expected: set[str] = set()
    for first in range(0, 25_000, 5000):
        reply = await enforcer_stub.ActivateBatch(
            pb.ActivateBatchRequest(
                workspace_id="acme",
                contacts=[pb.Contact(id=f"c{n}") for n in range(first, first + 5000)],
            )
        )
        expected |= {d.contact_key for d in reply.decisions}
    assert len(expected) == 25_000

    stop = asyncio.Event()

    async def admissions() -> None:
        n = 0
        while not stop.is_set():
            await enforcer_stub.ActivateBatch(
                pb.ActivateBatchRequest(
                    workspace_id="acme",
                    contacts=[pb.Contact(id=f"late-{n}-{i}") for i in range(200)],
                )
            )
            n += 1

    background = asyncio.create_task(admissions())
    listed: list[str] = []
    token = ""
    try:
        while True:
            page = await admin_stub.ListActiveContacts(
                admin_pb.ListActiveContactsRequest(
                    workspace_id="acme", page_token=token, page_size=1000
                ),
                metadata=AUTH,
            )
            listed += page.contact_keys
            token = page.next_page_token
            await asyncio.sleep(0)  # let admissions in between pages
            if not token:
                break
    finally:
        stop.set()
        await background
    assert len(listed) == len(set(listed)), "a key was listed twice"
    assert expected <= set(listed), "a key counted before the listing is missing"


async def test_changing_packs_keeps_the_subscription_start(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    start = utc(2026, 11, 18)
    clock.set(utc(2026, 11, 10))
    await act(enforcer_stub, email="before@example.com")
    await zone(admin_stub, "UTC", starts_at=start)
    clock.set(utc(2026, 11, 20))
    await act(enforcer_stub, **ANA)
    await admin_stub.SetSubscription(  # a pack added, starts_at not given: the start stays
        admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro", packs=1), metadata=AUTH
    )
    again = await act(enforcer_stub, **ANA)
    assert again.reason == pb.REASON_ALREADY_ACTIVE
    assert again.usage.active == 1
    assert again.usage.period_start.ToDatetime(tzinfo=UTC) == start
    cleared = admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro")
    cleared.starts_at.FromSeconds(0)
    sub = await admin_stub.SetSubscription(cleared, metadata=AUTH)
    assert not sub.HasField("starts_at")


async def test_listing_follows_the_workspace_zone_for_retention(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await zone(admin_stub, "Asia/Tokyo")
    clock.set(utc(2026, 11, 10))
    await act(enforcer_stub, **ANA)
    clock.set(utc(2027, 1, 15))  # November is still kept (until 1 February in Tokyo)
    page = await admin_stub.ListActiveContacts(
        admin_pb.ListActiveContactsRequest(workspace_id="acme", period="2026-11"), metadata=AUTH
    )
    assert page.total == 1

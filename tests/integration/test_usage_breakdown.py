"""GetUsage explains itself: contacts by the channel they were first counted on, new contacts
by day in the workspace's time zone, and a forecast of the period's end; written by the
decision script in the same step, on a real Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import redis

from sidecar.domain.clock import ManualClock, to_ms
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import subscribe
from tests.support.constants import AUTH


async def act(stub: pb_grpc.EnforcerStub, ws: str = "acme", **contact: str) -> pb.Decision:
    decision: pb.Decision = await stub.Activate(
        pb.ActivateRequest(workspace_id=ws, contact=pb.Contact(**contact))
    )
    return decision


async def usage(
    admin_stub: admin_grpc.AdminStub, ws: str = "acme", period: str = ""
) -> admin_pb.GetUsageResponse:
    reply: admin_pb.GetUsageResponse = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id=ws, period=period), metadata=AUTH
    )
    return reply


def channels(reply: admin_pb.GetUsageResponse) -> list[tuple[str, int]]:
    return [(c.channel, c.active) for c in reply.channels]


def days(reply: admin_pb.GetUsageResponse) -> list[tuple[str, int]]:
    return [(d.date, d.admitted) for d in reply.days]


async def test_contacts_count_under_the_channel_they_were_first_counted_on(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    for n in range(3):
        await act(enforcer_stub, email=f"s{n}@example.com", channel="sms")
    for n in range(2):
        await act(enforcer_stub, email=f"w{n}@example.com", channel="WhatsApp")
    await act(enforcer_stub, id="crm-1")
    # already counted: a later conversation on another channel moves nothing
    await act(enforcer_stub, email="s0@example.com", channel="email")
    await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(
            workspace_id="acme",
            contacts=[pb.Contact(id=f"b{n}", channel="email") for n in range(4)],
        )
    )
    reply = await usage(admin_stub)
    assert reply.usage.active == 10
    assert channels(reply) == [("email", 4), ("sms", 3), ("whatsapp", 2), ("unspecified", 1)]
    assert sum(c.active for c in reply.channels) == reply.usage.active


async def test_denied_exempt_and_dry_run_contacts_count_on_no_channel(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=1)
    await act(enforcer_stub, id="a", channel="sms")
    assert not (await act(enforcer_stub, id="b", channel="whatsapp")).allowed
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(workspace_id="acme", contacts=[pb.Contact(id="c")], exempt=True),
        metadata=AUTH,
    )
    await act(enforcer_stub, id="c", channel="email")
    await enforcer_stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(id="d", channel="livechat"))
    )
    await enforcer_stub.CheckBatch(
        pb.CheckBatchRequest(workspace_id="acme", contacts=[pb.Contact(id="e", channel="sms")])
    )
    assert channels(await usage(admin_stub)) == [("sms", 1)]


async def test_a_visitor_identified_later_stays_on_its_channel_once(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await act(enforcer_stub, channel="livechat", visitor_id="tok-1")
    await act(enforcer_stub, email="ana@example.com", channel="livechat", visitor_id="tok-1")
    reply = await usage(admin_stub)
    assert reply.usage.active == 1
    assert channels(reply) == [("livechat", 1)]


async def test_a_visitor_who_was_already_counted_as_a_person_leaves_its_channel(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await act(enforcer_stub, email="ana@example.com", channel="sms")
    await act(enforcer_stub, channel="livechat", visitor_id="tok-1")
    assert channels(await usage(admin_stub)) == [("livechat", 1), ("sms", 1)]
    merged = await act(
        enforcer_stub, email="ana@example.com", channel="livechat", visitor_id="tok-1"
    )
    assert merged.visitor_merged
    reply = await usage(admin_stub)
    assert reply.usage.active == 1
    assert channels(reply) == [("sms", 1)]


async def test_contacts_counted_before_channels_were_recorded_are_unspecified(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, redis_db: redis.Redis
) -> None:
    for n in range(3):
        await act(enforcer_stub, id=f"old-{n}", channel="sms")
    redis_db.delete(WorkspaceKeys("acme").usage("2026-11"))  # as a period from before
    await act(enforcer_stub, id="new", channel="sms")
    assert channels(await usage(admin_stub)) == [("unspecified", 3), ("sms", 1)]


async def test_days_are_dates_in_the_workspace_s_time_zone(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=100, timezone="America/Sao_Paulo")
    clock.set(datetime(2026, 11, 15, 2, 30, tzinfo=UTC))  # 23:30 on the 14th in São Paulo
    for n in range(2):
        await act(enforcer_stub, id=f"a{n}")
    clock.set(datetime(2026, 11, 15, 3, 30, tzinfo=UTC))  # 00:30 on the 15th
    for n in range(3):
        await act(enforcer_stub, id=f"b{n}")
    await act(enforcer_stub, id="a0")  # already counted: not a new contact of the day
    clock.set(datetime(2026, 11, 17, 12, 0, tzinfo=UTC))
    await act(enforcer_stub, id="c0")
    assert days(await usage(admin_stub)) == [
        ("2026-11-14", 2),
        ("2026-11-15", 3),
        ("2026-11-17", 1),
    ]


async def test_the_forecast_projects_the_pace_so_far_to_the_period_s_end(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 11, 11, tzinfo=UTC))  # 10 of November's 30 days
    for n in range(40):
        await act(enforcer_stub, id=f"c{n}")
    assert (await usage(admin_stub)).forecast_active == 120
    clock.set(datetime(2026, 11, 1, 0, 10, tzinfo=UTC))  # ten minutes in: an hour's pace
    assert (await usage(admin_stub)).forecast_active == 40 * 30 * 24


async def test_a_past_period_keeps_its_breakdown_and_its_final_count(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    for n in range(2):
        await act(enforcer_stub, id=f"c{n}", channel="sms")
    clock.set(datetime(2026, 12, 3, tzinfo=UTC))
    await act(enforcer_stub, id="d0", channel="email")
    past = await usage(admin_stub, period="2026-11")
    assert (past.recorded, past.usage.active, past.forecast_active) == (True, 2, 2)
    assert channels(past) == [("sms", 2)]
    assert days(past) == [("2026-11-15", 2)]
    current = await usage(admin_stub)
    assert (channels(current), days(current)) == ([("email", 1)], [("2026-12-03", 1)])
    empty = await usage(admin_stub, period="2026-01")
    assert (empty.recorded, list(empty.channels), list(empty.days)) == (False, [], [])


async def test_the_breakdown_expires_with_the_period_s_members(
    enforcer_stub: pb_grpc.EnforcerStub, redis_db: redis.Redis, clock: ManualClock
) -> None:
    await act(enforcer_stub, id="a", channel="sms")
    keys = WorkspaceKeys("acme")
    members_expiry = redis_db.pexpiretime(keys.members("2026-11"))
    assert members_expiry > to_ms(clock.now() + timedelta(days=30))
    assert redis_db.pexpiretime(keys.usage("2026-11")) == members_expiry

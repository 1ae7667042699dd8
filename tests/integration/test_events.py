"""Notification events: recorded once, atomically with their cause, and streamed."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections import Counter
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import redis

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.calls import activate, fill, kinds, no_more_events, read_events, subscribe
from tests.support.constants import ADMIN_TOKEN, AUTH
from tests.support.redis_servers import RedisServer
from tests.support.sidecar_process import SidecarProcess

Event = admin_pb.Event


async def test_thresholds_and_limit_are_recorded_once_under_concurrency(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=10)
    decisions = await asyncio.gather(*(activate(enforcer_stub, n) for n in range(60)))
    assert Counter(d.reason for d in decisions)[pb.REASON_ADMITTED] == 10
    await asyncio.gather(*(activate(enforcer_stub, n) for n in range(60)))  # again: nothing new

    events = await read_events(admin_stub, 3)
    assert kinds(events) == [
        ("THRESHOLD_CROSSED", 80),
        ("THRESHOLD_CROSSED", 100),
        ("LIMIT_REACHED", 0),
    ]
    assert [(e.active, e.limit) for e in events] == [(8, 10), (10, 10), (10, 10)]
    assert all(e.workspace_id == "acme" and e.period == "2026-11" for e in events)
    assert events[0].at.ToDatetime(tzinfo=UTC) == clock.now()
    assert await no_more_events(admin_stub, events[-1].id)


async def test_a_new_limit_is_a_new_crossing(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=5)
    await fill(enforcer_stub, 0, 5)
    await subscribe(admin_stub, plan="enterprise", custom_limit=5, packs=1)
    await fill(enforcer_stub, 5, 2500)
    events = await read_events(admin_stub, 3)
    assert kinds(events) == [
        ("THRESHOLD_CROSSED", 80),
        ("THRESHOLD_CROSSED", 100),
        ("THRESHOLD_CROSSED", 80),
    ]
    assert events[2].limit == 3005


async def test_trial_started_and_ended_events(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    clock.set(datetime(2026, 10, 1, tzinfo=UTC))
    await subscribe(admin_stub, plan="starter", platform_version="7.0.0")
    await fill(enforcer_stub, 0, 100)
    assert (await activate(enforcer_stub, 100)).reason == pb.REASON_TRIAL_STARTED
    clock.advance(timedelta(days=30, seconds=1))
    await activate(enforcer_stub, 0)
    events = await read_events(admin_stub, 4)
    assert kinds(events) == [
        ("THRESHOLD_CROSSED", 80),
        ("THRESHOLD_CROSSED", 100),
        ("TRIAL_STARTED", 0),
        ("TRIAL_ENDED", 0),
    ]
    assert events[2].limit == 15_000
    assert events[3].at.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 31, tzinfo=UTC)
    assert events[3].limit == 100


async def test_watch_resumes_after_an_id_and_follows_live_events(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=5)
    await fill(enforcer_stub, 0, 4)  # 80 %
    first = await read_events(admin_stub, 1)
    live = asyncio.create_task(read_events(admin_stub, 1, after=first[0].id))
    await asyncio.sleep(0.3)
    await fill(enforcer_stub, 4, 1)  # 100 %
    (second,) = await live
    assert kinds([second]) == [("THRESHOLD_CROSSED", 100)]

    def position(event_id: str) -> tuple[int, int]:
        ms, seq = event_id.split("-")
        return int(ms), int(seq)

    assert position(second.id) > position(first[0].id)


async def test_watch_every_workspace(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    for ws in ("acme", "globex"):
        await subscribe(admin_stub, ws, plan="enterprise", custom_limit=1)
        await fill(enforcer_stub, 0, 1, ws)
    events = await read_events(admin_stub, 4, ws="")
    assert Counter(e.workspace_id for e in events) == {"acme": 2, "globex": 2}
    assert {Event.Type.Name(e.type) for e in events} == {"TYPE_THRESHOLD_CROSSED"}


async def test_watch_needs_the_token_and_a_valid_cursor(admin_stub: admin_grpc.AdminStub) -> None:
    call = admin_stub.WatchEvents(admin_pb.WatchEventsRequest(workspace_id="acme"))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    call = admin_stub.WatchEvents(
        admin_pb.WatchEventsRequest(workspace_id="acme", after_id="yesterday"), metadata=AUTH
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("after_id:")


@pytest.mark.usefixtures("engine_env")
async def test_events_are_exactly_once_across_a_crash_mid_burst(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    """A sidecar killed with SIGKILL in the middle of a burst, then a new one finishing it."""
    env = {"MAC_ADMIN_TOKEN": ADMIN_TOKEN, "MAC_DEFAULT_LIMIT": "200"}
    first = SidecarProcess(redis_server.url, **env)
    first.start()
    contacts = [pb.Contact(id=f"crm-{n}") for n in range(400)]

    async def burst(port: int, part: list[pb.Contact]) -> None:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.EnforcerStub(channel)

            async def one(contact: pb.Contact) -> None:
                with contextlib.suppress(grpc.aio.AioRpcError):  # it died under this call
                    await stub.Activate(pb.ActivateRequest(workspace_id="acme", contact=contact))

            await asyncio.gather(*(one(c) for c in part))

    task = asyncio.create_task(burst(first.port, contacts[:300]))
    period = datetime.now(UTC).strftime("%Y-%m")
    for _ in range(2000):  # until the burst is under way
        if redis_db.hget("mac:{acme}:counts", period) not in (None, b"0"):
            break
        await asyncio.sleep(0.005)
    assert first.proc is not None
    first.proc.send_signal(signal.SIGKILL)
    await task
    first.stop()

    second = SidecarProcess(redis_server.url, **env)
    second.start()
    try:
        await burst(second.port, contacts)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{second.port}") as channel:
            admin_stub = admin_grpc.AdminStub(channel)
            events = await read_events(admin_stub, 3)
            assert kinds(events) == [
                ("THRESHOLD_CROSSED", 80),
                ("THRESHOLD_CROSSED", 100),
                ("LIMIT_REACHED", 0),
            ]
            assert await no_more_events(admin_stub, events[-1].id)
    finally:
        second.stop()

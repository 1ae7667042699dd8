"""Caps on work in progress, the drain on shutdown, and long input refused by name; through a
real in-process sidecar."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.support.calls import act
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory


async def first_event_or_status(call: Any, reads: list[asyncio.Future[Any]]) -> grpc.StatusCode:
    """``OK`` while the stream stays open for half a second (its pending read is kept in
    ``reads``: cancelling a read would cancel the stream), else the status it ended with."""
    read = asyncio.ensure_future(call.read())
    reads.append(read)
    done, _ = await asyncio.wait({read}, timeout=0.5)
    if not done:
        return grpc.StatusCode.OK
    error = read.exception()
    if isinstance(error, grpc.aio.AioRpcError):
        return error.code()
    return grpc.StatusCode.OK


async def close(calls: list[Any], reads: list[asyncio.Future[Any]]) -> None:
    for call in calls:
        call.cancel()
    await asyncio.gather(*reads, return_exceptions=True)


async def test_event_streams_beyond_the_cap_are_refused(make_sidecar: SidecarFactory) -> None:
    await make_sidecar(max_streams=2)
    admin = make_sidecar.admin()
    request = admin_pb.WatchEventsRequest(workspace_id="acme")
    reads: list[asyncio.Future[Any]] = []
    calls = [admin.WatchEvents(request, metadata=AUTH) for _ in range(2)]
    try:
        assert [await first_event_or_status(c, reads) for c in calls] == [grpc.StatusCode.OK] * 2
        third = admin.WatchEvents(request, metadata=AUTH)
        calls.append(third)
        assert await first_event_or_status(third, reads) is grpc.StatusCode.RESOURCE_EXHAUSTED
        calls[0].cancel()  # a closed stream frees its place
        await asyncio.sleep(0.2)
        again = admin.WatchEvents(request, metadata=AUTH)
        calls.append(again)
        assert await first_event_or_status(again, reads) is grpc.StatusCode.OK
    finally:
        await close(calls, reads)


async def test_calls_beyond_the_concurrency_cap_are_resource_exhausted(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(max_concurrent_rpcs=1)
    admin = make_sidecar.admin()
    stream = admin.WatchEvents(admin_pb.WatchEventsRequest(workspace_id="acme"), metadata=AUTH)
    reads: list[asyncio.Future[Any]] = []
    try:
        assert await first_event_or_status(stream, reads) is grpc.StatusCode.OK
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await act(stub, email="ana@example.com")
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await close([stream], reads)
    await asyncio.sleep(0.2)
    assert (await act(stub, email="ana@example.com")).allowed  # its place is free again


async def test_a_draining_sidecar_answers_unavailable(
    sidecar_app: Sidecar, enforcer_stub: pb_grpc.EnforcerStub
) -> None:
    assert (await act(enforcer_stub, email="ana@example.com")).allowed
    sidecar_app.gate.close()
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await act(enforcer_stub, email="ana@example.com")
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "shutting down" in (caught.value.details() or "")


async def test_a_long_plan_or_zone_is_invalid_argument_quoted_short(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    for request in (
        admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="x" * 20_000),
        admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro", timezone="Z" * 20_000),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin_stub.SetSubscription(request, metadata=AUTH)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert len(caught.value.details() or "") < 120


async def test_a_contact_bound_batch_over_the_limit_is_refused_by_count(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(batch_max=5)
    contacts = [pb.Contact(id=f"c{i}") for i in range(6)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ActivateBatch(pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("contacts: holds more than 5 contacts")


async def test_an_open_event_stream_does_not_hold_up_shutdown(
    settings: Settings, clock: ManualClock
) -> None:
    service = Sidecar(settings.replace(shutdown_grace=5.0), clock)
    await service.start()
    reads: list[asyncio.Future[Any]] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        stream = admin_grpc.AdminStub(channel).WatchEvents(
            admin_pb.WatchEventsRequest(workspace_id="acme"), metadata=AUTH
        )
        assert await first_event_or_status(stream, reads) is grpc.StatusCode.OK
        started = asyncio.get_running_loop().time()
        await service.stop()
        assert asyncio.get_running_loop().time() - started < 2.0  # not the 5 s grace
        await close([stream], reads)

"""Health, reflection, script reloads and the failure modes when Redis is away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from sidecar import metrics
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.server.app import Sidecar
from tests.support.redis_servers import RedisServer, free_port
from tests.support.sidecars import SidecarFactory

ANA = pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(email="ana@example.com"))


async def health_status(channel: grpc.aio.Channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    status: int = reply.status
    return status


async def wait_for_status(channel: grpc.aio.Channel, wanted: int) -> None:
    for _ in range(100):
        if await health_status(channel) == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"health never became {wanted}")


async def test_health_is_serving_with_redis(channel: grpc.aio.Channel) -> None:
    assert await health_status(channel) == health_pb2.HealthCheckResponse.SERVING
    assert await health_status(channel, "mac.v1.Enforcer") == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names = set()
    async for reply in stub.ServerReflectionInfo(iter([request])):
        names |= {s.name for s in reply.list_services_response.service}
    assert {"mac.v1.Enforcer", "grpc.health.v1.Health"} <= names


async def test_scripts_are_reloaded_after_script_flush(
    sidecar_app: Sidecar, channel: grpc.aio.Channel, redis_db: redis.Redis
) -> None:
    from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc

    stub = pb_grpc.EnforcerStub(channel)
    before = metrics.SCRIPT_RELOADS.labels("decide")._value.get()
    redis_db.script_flush()
    assert (await stub.Activate(ANA)).reason == pb.REASON_ADMITTED
    assert (await stub.Activate(ANA)).reason == pb.REASON_ALREADY_ACTIVE
    assert metrics.SCRIPT_RELOADS.labels("decide")._value.get() == before + 1


async def test_health_follows_redis_going_away_and_back(
    make_sidecar: SidecarFactory,
) -> None:
    own = RedisServer()
    own.start()
    try:
        stub = await make_sidecar(redis_url=own.url)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{make_sidecar.last.port}") as ch:
            await wait_for_status(ch, health_pb2.HealthCheckResponse.SERVING)
            own.stop()
            await wait_for_status(ch, health_pb2.HealthCheckResponse.NOT_SERVING)
            # liveness does not follow Redis: an outage must not restart the pods
            assert await health_status(ch, "liveness") == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Activate(ANA)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            own.start()
            await wait_for_status(ch, health_pb2.HealthCheckResponse.SERVING)
            assert (await stub.Activate(ANA)).reason == pb.REASON_ADMITTED
    finally:
        own.close()


@pytest.mark.parametrize(("mode", "allowed"), [("allow", True), ("deny", False)])
async def test_failure_mode_answers_backend_unavailable(
    make_sidecar: SidecarFactory, mode: str, allowed: bool, tmp_path: Path
) -> None:
    stub = await make_sidecar(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        failure_mode=mode,
        redis_timeout=0.2,
        journal_dir=str(tmp_path / "journal"),
    )
    decision = await stub.Activate(ANA)
    assert decision.reason == pb.REASON_BACKEND_UNAVAILABLE
    assert decision.allowed is allowed
    assert decision.contact_key
    batch = await stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=[ANA.contact, ANA.contact])
    )
    assert [d.reason for d in batch.decisions] == [pb.REASON_BACKEND_UNAVAILABLE] * 2
    check = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=ANA.contact))
    assert check.reason == pb.REASON_BACKEND_UNAVAILABLE
    # bad input is still bad input, whatever the backend does
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Activate(pb.ActivateRequest(workspace_id="acme"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_failure_mode_error_is_unavailable(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(redis_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=0.2)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Activate(ANA)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "Redis" in (caught.value.details() or "")

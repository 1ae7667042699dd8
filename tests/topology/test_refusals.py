"""A Redis that refuses writes (``OOM`` under ``maxmemory`` with ``noeviction``) is transient."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from tests.support import scenarios
from tests.support.redis_servers import RedisServer
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import accept_writes, refuse_writes


async def test_a_full_redis_is_unavailable_and_not_ready(make_sidecar: SidecarFactory) -> None:
    own = RedisServer()
    own.start()
    client = own.client()
    try:
        stub = await make_sidecar(redis_url=own.url, metrics_addr="127.0.0.1:0")
        service = make_sidecar.last
        url = f"http://127.0.0.1:{service.metrics_port}"
        ana = pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(email="ana@example.com"))
        bea = pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(email="bea@example.com"))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            assert (await stub.Activate(ana)).reason == pb.REASON_ADMITTED
            await scenarios.wait_health(channel, health_pb2.HealthCheckResponse.SERVING)
            await scenarios.wait_http(f"{url}/readyz", 200)

            refuse_writes(client)
            for call in (
                stub.Activate(bea),
                stub.ActivateBatch(
                    pb.ActivateBatchRequest(workspace_id="acme", contacts=[bea.contact])
                ),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call
                assert caught.value.code() == grpc.StatusCode.UNAVAILABLE, caught.value.details()
            await scenarios.wait_health(channel, health_pb2.HealthCheckResponse.NOT_SERVING)
            await scenarios.wait_http(f"{url}/readyz", 503)
            # an outage of writes must not restart the pods
            assert await scenarios.health(channel, "liveness") == (
                health_pb2.HealthCheckResponse.SERVING
            )
            assert scenarios.http_status(f"{url}/livez") == 200

            accept_writes(client)
            await scenarios.wait_health(channel, health_pb2.HealthCheckResponse.SERVING)
            await scenarios.wait_http(f"{url}/readyz", 200)
            assert (await stub.Activate(bea)).reason == pb.REASON_ADMITTED
            assert (await stub.Activate(ana)).reason == pb.REASON_ALREADY_ACTIVE
    finally:
        client.close()
        own.close()

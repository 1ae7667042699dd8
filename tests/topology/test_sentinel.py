"""The sidecar on a master, 2 replicas and 3 sentinels (``MAC_REDIS_TYPE=sentinel``)."""

from __future__ import annotations

import grpc
import pytest
import redis

from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support import scenarios
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import RedisSentinel

LIMIT = 50


def inspector(sentinel: RedisSentinel) -> scenarios.Inspect:
    """A direct connection to the master the sentinels name now."""

    def inspect(workspace: str) -> redis.Redis:
        return sentinel.master_client()

    return inspect


@pytest.fixture
async def two_sidecars(sentinel_sidecars: SidecarFactory) -> list[pb_grpc.EnforcerStub]:
    return [await sentinel_sidecars(default_limit=LIMIT) for _ in range(2)]


@pytest.mark.slow
async def test_exact_limit_under_concurrent_activate(
    sentinel: RedisSentinel, two_sidecars: list[pb_grpc.EnforcerStub]
) -> None:
    await scenarios.exact_limit_with_activate(
        two_sidecars, ["exact-a", "exact-b"], LIMIT, inspector(sentinel)
    )


@pytest.mark.slow
async def test_exact_limit_under_concurrent_batches_and_activate(
    sentinel: RedisSentinel, two_sidecars: list[pb_grpc.EnforcerStub]
) -> None:
    await scenarios.exact_limit_with_batches(
        two_sidecars, ["batch-a", "batch-b"], LIMIT, inspector(sentinel)
    )


async def test_admin_calls_and_health_work(
    sentinel: RedisSentinel, sentinel_sidecars: SidecarFactory
) -> None:
    stub = await sentinel_sidecars(metrics_addr="127.0.0.1:0")
    service = sentinel_sidecars.last
    admin = sentinel_sidecars.admin()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        await scenarios.admin_calls_and_health(
            stub,
            admin,
            channel,
            f"http://127.0.0.1:{service.metrics_port}",
            ["admin-a", "admin-b"],
            inspector(sentinel),
        )


@pytest.fixture
def topology(sentinel: RedisSentinel) -> RedisSentinel:
    """The topology of ``durable_sidecars``."""
    return sentinel


@pytest.mark.slow
async def test_a_master_killed_under_load_loses_no_acknowledged_admission(
    sentinel: RedisSentinel, durable_sidecars: list[pb_grpc.EnforcerStub]
) -> None:
    ws = "failover"
    old = sentinel.master()

    def kill() -> float:
        new, seconds = sentinel.kill_master()
        assert new is not old
        return seconds

    report = await scenarios.failover_under_load(durable_sidecars, ws, kill)
    with sentinel.master_client() as client:
        scenarios.assert_nothing_lost(report, client, ws)

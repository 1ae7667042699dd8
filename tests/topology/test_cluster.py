"""The sidecar on a Redis Cluster of 3 masters with 2 replicas each (``MAC_REDIS_TYPE=cluster``)."""

from __future__ import annotations

import grpc
import pytest
import redis
from redis.crc import key_slot

from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys
from tests.support import scenarios
from tests.support.calls import activate_concurrently
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import RedisCluster

LIMIT = 50


def inspector(cluster: RedisCluster) -> scenarios.Inspect:
    """A direct connection to the master serving a workspace's slot."""

    def inspect(workspace: str) -> redis.Redis:
        return cluster.master_of(WorkspaceKeys(workspace).counts).client()

    return inspect


@pytest.fixture
async def two_sidecars(cluster_sidecars: SidecarFactory) -> list[pb_grpc.EnforcerStub]:
    return [await cluster_sidecars(default_limit=LIMIT) for _ in range(2)]


@pytest.mark.slow
async def test_exact_limit_under_concurrent_activate(
    cluster: RedisCluster, two_sidecars: list[pb_grpc.EnforcerStub]
) -> None:
    workspaces = cluster.workspaces_on_each_master("exact")
    await scenarios.exact_limit_with_activate(two_sidecars, workspaces, LIMIT, inspector(cluster))


@pytest.mark.slow
async def test_exact_limit_under_concurrent_batches_and_activate(
    cluster: RedisCluster, two_sidecars: list[pb_grpc.EnforcerStub]
) -> None:
    workspaces = cluster.workspaces_on_each_master("batch")
    await scenarios.exact_limit_with_batches(two_sidecars, workspaces, LIMIT, inspector(cluster))


async def test_workspaces_spread_over_masters_each_on_one_node(
    cluster: RedisCluster, cluster_sidecars: SidecarFactory
) -> None:
    stub = await cluster_sidecars()
    admin = cluster_sidecars.admin()
    workspaces = [f"spread-{n}" for n in range(30)]
    for ws in workspaces:
        await scenarios.admin_subscribe(admin, ws)
        await activate_concurrently([stub], ws, scenarios.emails(f"{ws}-", 3))
    seen: dict[str, set[int]] = {ws: set() for ws in workspaces}
    for master in cluster.masters():
        ranges = cluster.slots_of(master)
        with master.client() as client:
            for raw in client.scan_iter(match="mac:{*", count=1000):
                key = raw.decode()
                ws = key[len("mac:{") : key.index("}")]
                slot = key_slot(raw)
                assert any(a <= slot <= b for a, b in ranges), f"{key} outside {master}'s slots"
                assert slot == key_slot(WorkspaceKeys(ws).counts.encode())
                if ws in seen:  # not the sidecar's own keys (a write probe's)
                    seen[ws].add(master.port)
    for ws, ports in seen.items():
        assert len(ports) == 1, f"{ws} has keys on {sorted(ports)}"
        assert ports == {cluster.master_of(WorkspaceKeys(ws).counts).port}
    assert len({port for ports in seen.values() for port in ports}) == 3
    # and each workspace's state is whole on its node: 3 contacts counted
    for ws in workspaces:
        with inspector(cluster)(ws) as client:
            assert len(scenarios.members(client, ws)) == 3


async def test_admin_calls_and_health_work(
    cluster: RedisCluster, cluster_sidecars: SidecarFactory
) -> None:
    stub = await cluster_sidecars(metrics_addr="127.0.0.1:0")
    service = cluster_sidecars.last
    admin = cluster_sidecars.admin()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
        await scenarios.admin_calls_and_health(
            stub,
            admin,
            channel,
            f"http://127.0.0.1:{service.metrics_port}",
            cluster.workspaces_on_each_master("admin"),
            inspector(cluster),
        )


@pytest.fixture
def topology(cluster: RedisCluster) -> RedisCluster:
    """The topology of ``durable_sidecars``."""
    return cluster


@pytest.mark.slow
async def test_a_master_killed_under_load_loses_no_acknowledged_admission(
    cluster: RedisCluster, durable_sidecars: list[pb_grpc.EnforcerStub]
) -> None:
    ws = "failover"
    key = WorkspaceKeys(ws).counts
    replicas = cluster.replicas_of(cluster.master_of(key))

    def kill() -> float:
        new, seconds = cluster.kill_master_of(key)
        assert new in replicas
        return seconds

    report = await scenarios.failover_under_load(durable_sidecars, ws, kill)
    with inspector(cluster)(ws) as client:
        scenarios.assert_nothing_lost(report, client, ws)

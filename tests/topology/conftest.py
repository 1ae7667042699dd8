"""Fixtures of the topology tests: a Redis Cluster and a Sentinel setup, and sidecars on them.

The topologies start once per session (seconds each); every test gets them whole again (killed
nodes restarted, replicas linked) and empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.settings import Settings
from tests.support.sidecar_process import SidecarProcess, enforcer_stubs
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import RedisCluster, RedisSentinel

# an admission is answered once a replica has it; the limit is never what stops a load
_DURABLE = {
    "MAC_REDIS_WAIT_REPLICAS": "1",
    "MAC_REDIS_WAIT_TIMEOUT_MS": "250",
    "MAC_DEFAULT_LIMIT": "1000000",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: takes seconds (a failover, a load); make test runs it all the same"
    )


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    topology = RedisCluster(masters=3, replicas=2)
    topology.start()
    try:
        yield topology
    finally:
        topology.close()


@pytest.fixture
def cluster(redis_cluster: RedisCluster) -> RedisCluster:
    """The session's cluster, whole and empty."""
    redis_cluster.heal()
    redis_cluster.flush()
    return redis_cluster


@pytest.fixture(scope="session")
def redis_sentinel() -> Iterator[RedisSentinel]:
    topology = RedisSentinel(replicas=2, sentinels=3)
    topology.start()
    try:
        yield topology
    finally:
        topology.close()


@pytest.fixture
def sentinel(redis_sentinel: RedisSentinel) -> RedisSentinel:
    """The session's sentinel setup, whole and empty."""
    redis_sentinel.heal()
    redis_sentinel.flush()
    return redis_sentinel


@pytest.fixture
def cluster_settings(settings: Settings, cluster: RedisCluster) -> Settings:
    return settings.replace(redis_type="cluster", redis_url=cluster.seeds)


@pytest.fixture
def sentinel_settings(settings: Settings, sentinel: RedisSentinel) -> Settings:
    return settings.replace(
        redis_type="sentinel",
        redis_url=sentinel.sentinel_urls,
        redis_sentinel_master=sentinel.master_name,
    )


@pytest.fixture
async def cluster_sidecars(
    cluster_settings: Settings, clock: ManualClock
) -> AsyncIterator[SidecarFactory]:
    """In-process sidecars on the cluster; overrides as keyword arguments."""
    factory = SidecarFactory(cluster_settings, clock)
    yield factory
    await factory.close()


@pytest.fixture
async def sentinel_sidecars(
    sentinel_settings: Settings, clock: ManualClock
) -> AsyncIterator[SidecarFactory]:
    """In-process sidecars on the sentinel setup; overrides as keyword arguments."""
    factory = SidecarFactory(sentinel_settings, clock)
    yield factory
    await factory.close()


def redis_variables(topology: RedisCluster | RedisSentinel) -> tuple[str, dict[str, str]]:
    """``MAC_REDIS_URL`` and the other ``MAC_REDIS_*`` variables of a sidecar on ``topology``."""
    if isinstance(topology, RedisCluster):
        return topology.seeds, {"MAC_REDIS_TYPE": "cluster"}
    return topology.sentinel_urls, {
        "MAC_REDIS_TYPE": "sentinel",
        "MAC_REDIS_SENTINEL_MASTER": topology.master_name,
    }


@pytest.fixture
async def durable_sidecars(
    topology: RedisCluster | RedisSentinel,
) -> AsyncIterator[list[pb_grpc.EnforcerStub]]:
    """Two sidecar processes on the module's ``topology`` that answer admissions once a
    replica has them."""
    url, variables = redis_variables(topology)
    procs = [SidecarProcess(url, **variables, **_DURABLE) for _ in range(2)]
    async with enforcer_stubs(procs) as stubs:
        yield stubs

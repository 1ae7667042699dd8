"""Fixtures of the topology tests: a Redis Cluster and a Sentinel setup, and sidecars on them.

The topologies start once per session (seconds each); every test gets them whole again (killed
nodes restarted, replicas linked) and empty.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sidecar.domain.clock import ManualClock
from sidecar.settings import Settings
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import RedisCluster, RedisSentinel


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

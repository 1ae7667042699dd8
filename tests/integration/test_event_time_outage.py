"""Event time through a Redis outage: an Activate journaled with its occurred_at replays into
its own period; one whose period closed meanwhile is dropped, counted and logged."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from tests.support.calls import fill
from tests.support.event_time import (
    KEYS,
    LAST_SECONDS,
    NOVEMBER_END,
    activate,
    active_in,
    berlin,
)
from tests.support.outages import stop_keeping_data
from tests.support.redis_servers import RedisServer
from tests.support.sidecars import SidecarFactory

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A Redis of the test's own, to stop and start again."""
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def outage_sidecars(
    make_sidecar: SidecarFactory, own_redis: RedisServer, tmp_path: Path
) -> SidecarFactory:
    make_sidecar.settings = make_sidecar.settings.replace(
        redis_url=own_redis.url,
        redis_timeout=0.2,
        health_interval=0.05,
        failure_mode="allow",
        journal_dir=str(tmp_path),
    )
    return make_sidecar


async def wait_until_replayed(factory: SidecarFactory, within: float = 15) -> None:
    journal = factory.last.journal
    assert journal is not None
    deadline = time.monotonic() + within
    while journal.pending:
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_an_activate_journaled_in_an_outage_replays_into_its_own_period(
    outage_sidecars: SidecarFactory, own_redis: RedisServer, tmp_path: Path
) -> None:
    stub = await outage_sidecars()
    admin_stub = outage_sidecars.admin()
    await berlin(admin_stub, outage_sidecars.clock)
    await fill(stub, 0, 1)
    outage_sidecars.clock.set(NOVEMBER_END + timedelta(seconds=3))
    stop_keeping_data(own_redis)
    late = await activate(stub, 1, LAST_SECONDS)
    now = await activate(stub, 2)
    for d in (late, now):
        assert (d.allowed, d.reason) == (True, pb.REASON_BACKEND_UNAVAILABLE)
    own_redis.start()
    await wait_until_replayed(outage_sidecars)
    assert await active_in(admin_stub, "2026-11") == 2
    assert await active_in(admin_stub) == 1
    assert os.listdir(tmp_path) == []


async def test_a_replay_into_a_period_closed_meanwhile_drops_the_entry(
    outage_sidecars: SidecarFactory, own_redis: RedisServer, tmp_path: Path
) -> None:
    stub = await outage_sidecars()
    admin_stub = outage_sidecars.admin()
    await berlin(admin_stub, outage_sidecars.clock)
    await fill(stub, 0, 1)
    outage_sidecars.clock.set(NOVEMBER_END + timedelta(seconds=3))
    # November closes (what closing writes) as Redis goes away: the outage cannot know it
    closer = own_redis.client()
    try:
        closer.hset(KEYS.counts, "2026-11:closed", str(int(NOVEMBER_END.timestamp() * 1000)))
    finally:
        closer.close()
    stop_keeping_data(own_redis)
    late = await activate(stub, 1, LAST_SECONDS)
    assert (late.allowed, late.reason) == (True, pb.REASON_BACKEND_UNAVAILABLE)
    before = REGISTRY.get_sample_value("mac_journal_closed_total") or 0
    own_redis.start()
    await wait_until_replayed(outage_sidecars)
    assert await active_in(admin_stub, "2026-11") == 1
    assert REGISTRY.get_sample_value("mac_journal_closed_total") == before + 1
    assert os.listdir(tmp_path) == []  # dropped, not retried

"""Fixtures shared by every test: real Redis servers and real gRPC servers, on free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import grpc
import pytest
import redis

from sidecar import logs
from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.support.constants import ADMIN_TOKEN, SECRET
from tests.support.redis_servers import RedisServer
from tests.support.sidecars import SidecarFactory

logs.configure("warning", "console")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


@pytest.fixture
def redis_db(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A synchronous client on an empty database, to inspect what the service wrote."""
    client = redis_server.client()
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 15, 12, 0, tzinfo=UTC))


@pytest.fixture
def settings(redis_server: RedisServer, redis_db: redis.Redis) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        grpc_addr="127.0.0.1:0",
        metrics_addr="",
        identity_secret=SECRET,
        admin_token=ADMIN_TOKEN,
        default_limit=100,
        # enterprise has no fair-usage trial: plain limits unless a test subscribes
        default_plan="enterprise",
        health_interval=0.1,
        shutdown_grace=0.5,
        # the clock stands still in tests: the warm path would never go stale. Its own tests
        # (test_warm_path.py) turn it on and move the clock.
        warm_seconds=0.0,
    )


@pytest.fixture
async def sidecar_app(settings: Settings, clock: ManualClock) -> AsyncIterator[Sidecar]:
    service = Sidecar(settings, clock)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def channel(sidecar_app: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar_app.port}") as ch:
        yield ch


@pytest.fixture
def enforcer_stub(channel: grpc.aio.Channel) -> pb_grpc.EnforcerStub:
    return pb_grpc.EnforcerStub(channel)


@pytest.fixture
def admin_stub(channel: grpc.aio.Channel) -> admin_grpc.AdminStub:
    """The Admin stub; calls need ``metadata=AUTH``."""
    return admin_grpc.AdminStub(channel)


@pytest.fixture
async def make_sidecar(settings: Settings, clock: ManualClock) -> AsyncIterator[SidecarFactory]:
    factory = SidecarFactory(settings, clock)
    yield factory
    await factory.close()

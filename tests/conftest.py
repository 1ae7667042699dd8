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
from tests.redis_servers import RedisServer

logs.configure("warning", "console")

SECRET = "test-identity-secret-0123456789"
ADMIN_TOKEN = "test-admin-token"
AUTH = (("authorization", f"Bearer {ADMIN_TOKEN}"),)


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
    )


@pytest.fixture
async def sidecar(settings: Settings, clock: ManualClock) -> AsyncIterator[Sidecar]:
    service = Sidecar(settings, clock)
    await service.start()
    yield service
    await service.stop()


@pytest.fixture
async def channel(sidecar: Sidecar) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.port}") as ch:
        yield ch


@pytest.fixture
def enforcer(channel: grpc.aio.Channel) -> pb_grpc.EnforcerStub:
    return pb_grpc.EnforcerStub(channel)


@pytest.fixture
def admin(channel: grpc.aio.Channel) -> admin_grpc.AdminStub:
    """The Admin stub; calls need ``metadata=AUTH``."""
    return admin_grpc.AdminStub(channel)


class SidecarFactory:
    """Starts sidecars with setting overrides; stops them all at the end of the test."""

    def __init__(self, settings: Settings, clock: ManualClock) -> None:
        self.settings = settings
        self.clock = clock
        self._started: list[tuple[Sidecar, grpc.aio.Channel]] = []
        self._channels: list[grpc.aio.Channel] = []

    async def __call__(self, **changes: object) -> pb_grpc.EnforcerStub:
        service = Sidecar(self.settings.replace(**changes), self.clock)
        await service.start()
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.port}")
        self._started.append((service, channel))
        return pb_grpc.EnforcerStub(channel)

    @property
    def last(self) -> Sidecar:
        return self._started[-1][0]

    def admin(self) -> admin_grpc.AdminStub:
        """The Admin stub of the last sidecar started (same port unless admin_addr is set)."""
        service, channel = self._started[-1]
        if service.admin_server is None:
            return admin_grpc.AdminStub(channel)
        admin_channel = grpc.aio.insecure_channel(f"127.0.0.1:{service.admin_port}")
        self._channels.append(admin_channel)
        return admin_grpc.AdminStub(admin_channel)

    async def close(self) -> None:
        for extra in self._channels:
            await extra.close()
        for service, channel in self._started:
            await channel.close()
            await service.stop()


@pytest.fixture
async def make_enforcer(settings: Settings, clock: ManualClock) -> AsyncIterator[SidecarFactory]:
    factory = SidecarFactory(settings, clock)
    yield factory
    await factory.close()

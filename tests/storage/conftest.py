"""A ``RedisStore`` on the session's Redis server, emptied for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from sidecar.settings import Settings
from sidecar.storage.connections import RedisConnections
from sidecar.storage.store import RedisStore
from tests.support.redis_servers import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[RedisStore]:
    connections = RedisConnections.from_settings(Settings(redis_url=redis_server.url))
    yield RedisStore(connections)
    await connections.close()

"""A ``RedisStore`` on the session's Redis server, emptied for each test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from sidecar.storage.connections import RedisConnections, RedisOptions
from sidecar.storage.store import RedisStore
from tests.support.redis_servers import RedisServer


@pytest.fixture
async def store(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[RedisStore]:
    options = RedisOptions(
        urls=(redis_server.url,), topology="single", timeout=0.5, max_connections=64
    )
    connections = RedisConnections.from_options(options)
    yield RedisStore(connections)
    await connections.close()

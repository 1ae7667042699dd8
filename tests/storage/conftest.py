"""A ``RedisStore`` on the session's Redis server, emptied for each test, and stores of a
test's own (another server, another timeout, a smaller cache)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest
import redis

from sidecar.storage.connections import RedisConnections, RedisOptions
from sidecar.storage.store import CACHE_SIZE, RedisStore
from tests.support.redis_servers import RedisServer

OpenStore = Callable[..., RedisStore]


@pytest.fixture
async def open_store() -> AsyncIterator[OpenStore]:
    """Opens ``RedisStore(url, cache_size=..., timeout=...)``; closes each at the end."""
    opened: list[RedisConnections] = []

    def open_one(url: str, *, cache_size: int = CACHE_SIZE, timeout: float = 0.5) -> RedisStore:
        options = RedisOptions(urls=(url,), topology="single", timeout=timeout, max_connections=64)
        connections = RedisConnections.from_options(options)
        opened.append(connections)
        return RedisStore(connections, cache_size=cache_size)

    yield open_one
    for connections in opened:
        await connections.close()


@pytest.fixture
def store(redis_server: RedisServer, redis_db: redis.Redis, open_store: OpenStore) -> RedisStore:
    return open_store(redis_server.url)

"""The pipelined connection of the hot path, against real Redis servers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
from redis import exceptions as rex

from sidecar.storage.multiplex import MultiplexedConnection
from tests.support.redis_servers import RedisServer

PASSWORD = "s3cret"


@pytest.fixture
def locked_redis() -> Iterator[RedisServer]:
    """A Redis of its own that requires a password."""
    own = RedisServer()
    own.start()
    admin_stub = own.client()
    admin_stub.config_set("requirepass", PASSWORD)
    admin_stub.close()
    yield own
    own.close()


def count_in(server: RedisServer, db: int) -> int:
    client = redis.Redis(port=server.port, password=PASSWORD, db=db)
    try:
        return int(client.dbsize())
    finally:
        client.close()


async def test_concurrent_callers_each_get_their_own_reply(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    conn = MultiplexedConnection(redis_server.url, timeout=2)
    try:
        replies = await asyncio.gather(*(conn.execute("ECHO", f"m{i}") for i in range(2000)))
        assert replies == [f"m{i}".encode() for i in range(2000)]
        assert await conn.execute("INCRBY", "n", 5) == 5
    finally:
        conn.close()


async def test_error_replies_raise_redis_py_errors_and_fail_only_their_call(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    conn = MultiplexedConnection(redis_server.url, timeout=2)
    try:
        results = await asyncio.gather(
            conn.execute("EVALSHA", "0" * 40, 0),
            conn.execute("NOSUCHCOMMAND"),
            conn.execute("PING"),
            return_exceptions=True,
        )
        assert isinstance(results[0], rex.NoScriptError)
        assert isinstance(results[1], rex.ResponseError)
        assert results[2] in (b"PONG", "PONG", True)
    finally:
        conn.close()


async def test_redis_going_away_fails_calls_and_the_next_call_reconnects() -> None:
    own = RedisServer()
    own.start()
    conn = MultiplexedConnection(own.url, timeout=1)
    try:
        assert await conn.execute("SET", "k", "v")
        own.stop()
        with pytest.raises(rex.ConnectionError):
            await conn.execute("GET", "k")
        own.start()
        assert await conn.execute("SET", "k", "w")
        assert await conn.execute("GET", "k") == b"w"
    finally:
        conn.close()
        own.close()


async def test_a_timeout_resets_the_connection(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    conn = MultiplexedConnection(redis_server.url, timeout=0.2)
    try:
        assert await conn.execute("ECHO", "before") == b"before"
        redis_db.client_pause(500)  # Redis holds every reply for half a second
        slow = asyncio.create_task(conn.execute("ECHO", "slow"))
        behind = asyncio.create_task(conn.execute("ECHO", "behind"))
        with pytest.raises(rex.TimeoutError):
            await slow
        with pytest.raises(rex.TimeoutError):
            await behind  # its reply can no longer be told apart: it fails too
        await asyncio.sleep(0.4)
        assert await conn.execute("ECHO", "after") == b"after"
    finally:
        conn.close()


async def test_password_and_database_from_the_url(locked_redis: RedisServer) -> None:
    conn = MultiplexedConnection(f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/3", timeout=1)
    await conn.execute("SET", "where", "db3")
    conn.close()
    assert count_in(locked_redis, 3) == 1
    wrong = MultiplexedConnection(f"redis://:nope@127.0.0.1:{locked_redis.port}/0", timeout=1)
    with pytest.raises(rex.AuthenticationError):
        await wrong.execute("PING")
    wrong.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    from tests.support.redis_servers import free_port

    conn = MultiplexedConnection(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    with pytest.raises(rex.ConnectionError):
        await conn.execute("PING")


async def test_the_first_concurrent_callers_all_land_in_the_selected_database(
    locked_redis: RedisServer,
) -> None:
    conn = MultiplexedConnection(f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/3", timeout=1)
    await asyncio.gather(*(conn.execute("SET", f"k{i}", i) for i in range(50)))
    conn.close()
    assert count_in(locked_redis, 3) == 50
    assert count_in(locked_redis, 0) == 0


async def test_a_cancelled_first_caller_leaves_no_half_ready_connection(
    locked_redis: RedisServer,
) -> None:
    conn = MultiplexedConnection(f"redis://:{PASSWORD}@127.0.0.1:{locked_redis.port}/2", timeout=1)
    first = asyncio.create_task(conn.execute("SET", "a", 1))
    await asyncio.sleep(0)  # connecting
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    await conn.execute("SET", "b", 2)
    conn.close()
    assert count_in(locked_redis, 2) == 1
    assert count_in(locked_redis, 0) == 0


async def test_after_a_failed_connect_callers_fail_at_once_then_retry() -> None:
    from tests.support.redis_servers import free_port

    port = free_port()
    # the window a failure is remembered for is the timeout: long enough to start Redis in
    conn = MultiplexedConnection(f"redis://127.0.0.1:{port}/0", timeout=3.0)
    with pytest.raises(rex.ConnectionError):
        await conn.execute("PING")
    own = RedisServer(port)
    own.start()
    try:
        with pytest.raises(rex.ConnectionError):  # within the timeout of the failure
            await conn.execute("PING")
        await asyncio.sleep(3.1)
        assert await conn.execute("PING") in (b"PONG", "PONG", True)
    finally:
        conn.close()
        own.close()


async def test_a_read_only_reply_reconnects_for_the_new_primary() -> None:
    from tests.support.redis_servers import free_port

    own = RedisServer()
    own.start()
    admin_stub = own.client()
    conn = MultiplexedConnection(own.url, timeout=1)
    try:
        assert await conn.execute("SET", "k", 1)
        first_id = await conn.execute("CLIENT", "ID")
        admin_stub.replicaof("127.0.0.1", free_port())  # what a failover does to the old primary
        with pytest.raises(rex.ReadOnlyError):
            await conn.execute("SET", "k", 2)
        admin_stub.replicaof("NO", "ONE")
        assert await conn.execute("SET", "k", 3)
        assert admin_stub.get("k") == b"3"
        assert await conn.execute("CLIENT", "ID") != first_id  # a new connection
    finally:
        conn.close()
        admin_stub.close()
        own.close()

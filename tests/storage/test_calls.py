"""The one way commands and scripts reach Redis: every script registered and loaded, loaded
again on NOSCRIPT, timed and counted, and failures wrapped with whether the command may have
run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from importlib import resources

import pytest
import redis
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from sidecar.domain.clock import to_ms
from sidecar.domain.contact import KeyedContact
from sidecar.domain.errors import StorageError
from sidecar.domain.period import period_at
from sidecar.domain.ports import DecideReply, DecideRequest
from sidecar.storage import scripts
from sidecar.storage.keys import REGISTRY as WORKSPACES
from sidecar.storage.store import RedisStore
from sidecar.storage.webhooks import WebhookStreams
from tests.support.constants import SMALL_POLICY as POLICY
from tests.support.redis_servers import RedisServer, free_port

LUA = resources.files("sidecar.storage") / "lua"
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
PERIOD = period_at(NOW)
EXPIRES = to_ms(datetime(2027, 2, 1, tzinfo=UTC))
OpenStore = Callable[..., RedisStore]  # the fixture open_store


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def unknown_outcomes() -> float:
    return sample("mac_redis_unknown_outcomes_total")


async def decide(store: RedisStore, workspace: str = "acme", n: int = 1) -> DecideReply:
    contact = KeyedContact((n.to_bytes(14, "big"),))
    request = DecideRequest(workspace, PERIOD, to_ms(NOW), EXPIRES, POLICY, "", [contact])
    return await store.decide(request)


@pytest.fixture
async def streams(
    redis_server: RedisServer, redis_db: redis.Redis
) -> AsyncIterator[WebhookStreams]:
    consumer = WebhookStreams(Redis.from_url(redis_server.url), "consumer-1")
    yield consumer
    await consumer.close()


def test_every_script_file_is_registered() -> None:
    files = {f.name.removesuffix(".lua") for f in LUA.iterdir() if f.name.endswith(".lua")}
    assert files == {script.name for script in scripts.ALL}
    assert len({script.sha for script in scripts.ALL}) == len(scripts.ALL)


async def test_load_scripts_loads_every_one_the_webhook_ones_included(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    redis_db.script_flush()
    await store.load_scripts()
    assert redis_db.script_exists(*(script.sha for script in scripts.ALL)) == [True] * len(
        scripts.ALL
    )


async def test_a_flushed_script_is_loaded_again_once_on_every_adapter(
    store: RedisStore, streams: WebhookStreams, redis_db: redis.Redis
) -> None:
    await decide(store)
    redis_db.script_flush()
    decide_reloads = sample("mac_redis_script_reloads_total", script="decide")
    renew_reloads = sample("mac_redis_script_reloads_total", script="webhook_renew")
    poll_reloads = sample("mac_redis_script_reloads_total", script="webhook_poll")
    assert (await decide(store, n=2)).active == 2
    assert not await streams.renew("acme", 1000)
    polled = await streams.poll(["acme", "globex"], start_id="0-0", lease_ms=1000, take=False)
    assert [p.workspace_id for p in polled] == ["acme", "globex"]
    assert sample("mac_redis_script_reloads_total", script="decide") == decide_reloads + 1
    assert sample("mac_redis_script_reloads_total", script="webhook_renew") == renew_reloads + 1
    assert sample("mac_redis_script_reloads_total", script="webhook_poll") == poll_reloads + 1


async def test_webhook_scripts_are_timed_and_their_errors_counted(
    streams: WebhookStreams, redis_db: redis.Redis
) -> None:
    timed = sample("mac_redis_round_trip_seconds_count", operation="webhook_renew")
    await streams.renew("acme", 1000)
    assert sample("mac_redis_round_trip_seconds_count", operation="webhook_renew") == timed + 1

    errors = sample("mac_redis_errors_total", operation="webhook_read_new", kind="permanent")
    redis_db.set("mac:{acme}:events", "not a stream")
    with pytest.raises(StorageError) as raised:
        await streams.read_new("acme", 10)
    assert not raised.value.transient
    assert not raised.value.outcome_unknown
    assert "webhook_read_new.lua:" in str(raised.value)
    after = sample("mac_redis_errors_total", operation="webhook_read_new", kind="permanent")
    assert after == errors + 1


async def test_a_timeout_after_sending_leaves_the_outcome_unknown(
    redis_server: RedisServer, redis_db: redis.Redis, open_store: OpenStore
) -> None:
    store = open_store(redis_server.url, timeout=0.2)
    await decide(store)  # connected, the workspace registered
    before = unknown_outcomes()
    redis_db.client_pause(600)  # Redis holds every reply longer than the timeout
    with pytest.raises(StorageError) as raised:
        await decide(store, n=2)
    assert "TimeoutError" in str(raised.value)
    assert (raised.value.transient, raised.value.outcome_unknown) == (True, True)
    assert unknown_outcomes() == before + 1


async def test_a_connection_lost_after_sending_leaves_the_outcome_unknown(
    redis_server: RedisServer, redis_db: redis.Redis, open_store: OpenStore
) -> None:
    store = open_store(redis_server.url, timeout=5.0)
    await decide(store)
    before = unknown_outcomes()
    redis_db.client_pause(5000, all=False)  # writes wait, the test's own commands do not
    try:
        deciding = asyncio.create_task(decide(store, n=2))
        await asyncio.sleep(0.2)  # the script was sent and waits in Redis
        redis_db.client_kill_filter(_type="normal", skipme=True)
        with pytest.raises(StorageError) as raised:
            await deciding
    finally:
        redis_db.client_unpause()
    assert "ConnectionError" in str(raised.value)
    assert (raised.value.transient, raised.value.outcome_unknown) == (True, True)
    assert unknown_outcomes() == before + 1


async def test_a_refused_connection_before_sending_leaves_the_outcome_known(
    open_store: OpenStore,
) -> None:
    store = open_store(f"redis://127.0.0.1:{free_port()}/0", timeout=0.5)
    before = unknown_outcomes()
    for _ in range(2):  # connecting, then failing at once while the failure is fresh
        with pytest.raises(StorageError) as raised:
            await decide(store)
        assert (raised.value.transient, raised.value.outcome_unknown) == (True, False)
    assert unknown_outcomes() == before


async def test_more_workspaces_than_the_cache_holds_are_each_registered(
    redis_server: RedisServer, redis_db: redis.Redis, open_store: OpenStore
) -> None:
    store = open_store(redis_server.url, cache_size=2)
    for workspace in ("ws-1", "ws-2", "ws-3"):
        await decide(store, workspace)
    assert redis_db.smembers(WORKSPACES) == {b"ws-1", b"ws-2", b"ws-3"}
    redis_db.delete(WORKSPACES)
    # the least recently used went; the two most recent stay known
    for workspace in ("ws-3", "ws-2", "ws-1"):
        await decide(store, workspace)
    assert redis_db.smembers(WORKSPACES) == {b"ws-1"}

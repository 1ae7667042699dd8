"""The topology fixtures themselves, checked with plain redis-py clients (no sidecar)."""

from __future__ import annotations

import pytest
import redis
from redis.crc import key_slot

from sidecar.storage.keys import WorkspaceKeys
from tests.support.redis_servers import RedisServer
from tests.support.topologies import (
    SLOTS,
    RedisCluster,
    RedisSentinel,
    accept_writes,
    refuse_writes,
)


def test_the_cluster_is_three_masters_with_two_replicas_each(cluster: RedisCluster) -> None:
    masters = cluster.masters()
    assert len(masters) == 3
    assert len(cluster.seeds.split(",")) == 3
    assert all(url.startswith("redis://127.0.0.1:") for url in cluster.seeds.split(","))
    covered = sum(b - a + 1 for node in masters for a, b in cluster.slots_of(node))
    assert covered == SLOTS
    for master in masters:
        replicas = cluster.replicas_of(master)
        assert len(replicas) == 2
        assert all(r.info("replication")["role"] == "slave" for r in replicas)
    assert all(node.port <= 55535 for node in cluster.nodes)


def test_keys_route_to_the_master_of_their_slot(cluster: RedisCluster) -> None:
    workspaces = cluster.workspaces_on_each_master("route", per_master=2)
    assert len(workspaces) == 6
    assert len({cluster.master_of(WorkspaceKeys(ws).counts).port for ws in workspaces}) == 3
    client = cluster.client()
    try:
        for ws in workspaces:
            client.hset(WorkspaceKeys(ws).counts, "2026-11", 1)
    finally:
        client.close()
    for ws in workspaces:
        key = WorkspaceKeys(ws).counts
        owner = cluster.master_of(key)
        with owner.client() as direct:
            assert direct.hget(key, "2026-11") == b"1"
        other = next(m for m in cluster.masters() if m is not owner)
        with other.client() as direct, pytest.raises(redis.exceptions.MovedError):
            direct.hget(key, "2026-11")


@pytest.mark.slow
def test_a_master_kill_promotes_one_of_its_replicas(cluster: RedisCluster) -> None:
    key = WorkspaceKeys("failover").counts
    old = cluster.master_of(key)
    replicas = cluster.replicas_of(old)
    with old.client() as direct:
        direct.hset(key, "2026-11", 7)
        assert direct.execute_command("WAIT", 2, 5000) == 2
    new, seconds = cluster.kill_master_of(key)
    print(f"cluster failover: {seconds:.2f} s")
    assert new in replicas
    assert not old.alive
    assert seconds < 30
    with new.client() as direct:
        assert direct.hget(key, "2026-11") == b"7"
    client = cluster.client()
    try:
        assert client.hget(key, "2026-11") == b"7"
    finally:
        client.close()
    cluster.heal()
    assert old.alive
    assert cluster.master_of(key) is new
    assert old in cluster.replicas_of(new)


def test_flush_empties_every_master(cluster: RedisCluster) -> None:
    client = cluster.client()
    try:
        for ws in cluster.workspaces_on_each_master("flush"):
            client.set(f"mac:{{{ws}}}:x", 1)
        cluster.flush()
        for master in cluster.masters():
            with master.client() as direct:
                assert direct.dbsize() == 0
    finally:
        client.close()


def test_sentinel_watches_one_master_with_two_replicas(sentinel: RedisSentinel) -> None:
    assert len(sentinel.sentinel_urls.split(",")) == 3
    master = sentinel.master()
    assert master.info("replication")["connected_slaves"] == 2
    for watcher in sentinel.sentinels:
        with watcher.client() as client:
            host, port = client.sentinel_get_master_addr_by_name(sentinel.master_name)
            assert (host, int(port)) in {("127.0.0.1", master.port), (b"127.0.0.1", master.port)}
            assert len(client.sentinel_slaves(sentinel.master_name)) == 2
            assert len(client.sentinel_sentinels(sentinel.master_name)) == 2
    with sentinel.master_client() as client:
        client.set("mac:{acme}:x", 1)
        assert client.execute_command("WAIT", 2, 5000) == 2


@pytest.mark.slow
def test_sentinel_names_a_new_master_after_a_kill(sentinel: RedisSentinel) -> None:
    old = sentinel.master()
    with sentinel.master_client() as client:
        client.set("mac:{acme}:x", "kept")
        assert client.execute_command("WAIT", 2, 5000) == 2
    new, seconds = sentinel.kill_master()
    print(f"sentinel failover: {seconds:.2f} s")
    assert new is not old
    assert seconds < 30
    assert sentinel.master_port() == new.port
    with sentinel.master_client() as client:
        assert client.get("mac:{acme}:x") == b"kept"
        client.set("mac:{acme}:y", 1)  # writable: a master
    sentinel.heal()
    assert old.alive
    assert old.info("replication")["role"] == "slave"
    assert sentinel.master() is new


def test_refuse_writes_makes_redis_answer_oom() -> None:
    server = RedisServer()
    server.start()
    client = server.client()
    try:
        assert refuse_writes(client) > 0
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            client.set("one-more", 1)
        assert client.ping()  # reads still answer
        accept_writes(client)
        assert client.set("one-more", 1)
    finally:
        client.close()
        server.close()


def test_slot_helper_matches_redis(cluster: RedisCluster) -> None:
    key = WorkspaceKeys("acme").counts
    with cluster.masters()[0].client() as direct:
        assert direct.execute_command("CLUSTER KEYSLOT", key) == key_slot(key.encode())

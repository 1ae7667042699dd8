"""The settings of the Redis servers the service keeps its state in: the first fields of
``Settings``, and the helper every setting is declared with."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REDIS_TYPES = ("single", "cluster", "sentinel")


def setting(env: str, default: Any, help: str, *, secret: bool = False, **extra: Any) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "secret": secret, **extra})


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is and how to reach it (the timeout and pool size are in ``Settings``)."""

    redis_url: str = setting(
        "MAC_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis to keep state in (redis://, rediss:// or unix://); for a cluster its seed nodes, "
        "for sentinel the sentinels, comma separated",
    )
    redis_type: str = setting(
        "MAC_REDIS_TYPE",
        "single",
        "single (one Redis, or a proxy), cluster (Redis Cluster) or sentinel",
        choices=REDIS_TYPES,
    )
    redis_username: str = setting(
        "MAC_REDIS_USERNAME",
        "",
        "user of the Redis servers (the cluster's nodes, sentinel's master) when not in the URL",
    )
    redis_password: str = setting(
        "MAC_REDIS_PASSWORD",
        "",
        "password of the Redis servers (the cluster's nodes, sentinel's master) when not in "
        "the URL",
        secret=True,
    )
    redis_sentinel_master: str = setting(
        "MAC_REDIS_SENTINEL_MASTER",
        "",
        "the name the sentinels monitor the master under (MAC_REDIS_TYPE=sentinel)",
    )
    redis_sentinel_username: str = setting(
        "MAC_REDIS_SENTINEL_USERNAME", "", "user of the sentinels themselves, when they need one"
    )
    redis_sentinel_password: str = setting(
        "MAC_REDIS_SENTINEL_PASSWORD",
        "",
        "password of the sentinels themselves, when they need one",
        secret=True,
    )
    redis_wait_replicas: int = setting(
        "MAC_REDIS_WAIT_REPLICAS",
        0,
        "replicas that must have an admission before it is answered (WAIT); 0: none",
        minimum=0,
        maximum=16,
    )
    redis_wait_timeout_ms: int = setting(
        "MAC_REDIS_WAIT_TIMEOUT_MS",
        100,
        "how long an admission waits for MAC_REDIS_WAIT_REPLICAS; fewer in time: UNAVAILABLE",
        minimum=1,
        maximum=10_000,
    )

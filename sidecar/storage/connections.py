"""The Redis connections of one process: a pool for operator calls and probes, a pool whose
reads may block (``XREAD BLOCK``), and the pipelined connection(s) of the decision path; on a
single Redis, behind Sentinel, or on a Redis Cluster (``MAC_REDIS_TYPE``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from sidecar.settings import Settings
from sidecar.storage.cluster import ClusterConnections
from sidecar.storage.multiplex import MultiplexedConnection

# How long one XREAD of WatchEvents waits for new events.
WATCH_BLOCK_MS = 1000

Client = Redis | RedisCluster
Pipelined = MultiplexedConnection | ClusterConnections


def _timeouts(settings: Settings, blocking_reads: bool) -> dict[str, Any]:
    read_timeout = settings.redis_timeout + (WATCH_BLOCK_MS / 1000 if blocking_reads else 0)
    return {"socket_timeout": read_timeout, "socket_connect_timeout": settings.redis_timeout}


def _credentials(settings: Settings) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if settings.redis_username:
        found["username"] = settings.redis_username
    if settings.redis_password:
        found["password"] = settings.redis_password
    return found


def redis_client(
    settings: Settings, *, blocking_reads: bool = False, sentinel: Sentinel | None = None
) -> Client:
    """A redis-py client of the configured topology: bounded waits, one immediate retry, no
    backoff.

    A caller waits at most about two Redis timeouts; retrying longer would only hold up
    routing while Redis is away. ``blocking_reads`` allows for ``XREAD BLOCK``.
    """
    if settings.redis_type == "cluster":
        return _cluster_client(settings, blocking_reads)
    if settings.redis_type == "sentinel":
        master: Redis = (sentinel or sentinel_of(settings)).master_for(
            settings.redis_sentinel_master,
            max_connections=settings.redis_max_connections,
            retry=Retry(NoBackoff(), 1),
            **_timeouts(settings, blocking_reads),
        )
        return master
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 1),
        **_credentials(settings),
        **_timeouts(settings, blocking_reads),
    )
    return Redis.from_pool(pool)


def _cluster_client(settings: Settings, blocking_reads: bool) -> RedisCluster:
    urls = settings.redis_urls()
    params = parse_url(urls[0])
    tls = urlsplit(urls[0]).scheme == "rediss"
    options: dict[str, Any] = (
        {k: v for k, v in params.items() if k.startswith("ssl_")} if tls else {}
    )
    credentials: dict[str, Any] = {k: params[k] for k in ("username", "password") if params.get(k)}
    return RedisCluster(
        startup_nodes=[
            ClusterNode(u.hostname or "localhost", u.port or 6379) for u in map(urlsplit, urls)
        ],
        max_connections=settings.redis_max_connections,
        ssl=tls,
        **options,
        **(credentials or _credentials(settings)),
        **_timeouts(settings, blocking_reads),
    )


def sentinel_of(settings: Settings) -> Sentinel:
    """The sentinels of ``MAC_REDIS_URL``, with their own credentials, handing out the
    master's (``MAC_REDIS_USERNAME``/``PASSWORD``)."""
    urls = [urlsplit(url) for url in settings.redis_urls()]
    own: dict[str, Any] = {"socket_timeout": settings.redis_timeout}
    username = settings.redis_sentinel_username or urls[0].username
    password = settings.redis_sentinel_password or urls[0].password
    if username:
        own["username"] = username
    if password:
        own["password"] = password
    if urls[0].scheme == "rediss":
        own["ssl"] = True
    return Sentinel(
        [(u.hostname or "localhost", u.port or 26379) for u in urls],
        sentinel_kwargs=own,
        ssl=urls[0].scheme == "rediss",
        **_credentials(settings),
    )


def pipelined_of(settings: Settings, sentinel: Sentinel | None = None) -> Pipelined:
    """The decision path's pipelined connection(s)."""
    username = settings.redis_username or None
    password = settings.redis_password or None
    if settings.redis_type == "cluster":
        return ClusterConnections(
            settings.redis_urls(), settings.redis_timeout, username=username, password=password
        )
    if settings.redis_type == "sentinel":
        sentinels = sentinel or sentinel_of(settings)
        first = urlsplit(settings.redis_urls()[0])
        # the master's address comes from the sentinels; the URL gives scheme, TLS and db
        template = first._replace(netloc=f"{first.hostname}:{first.port or 26379}").geturl()

        async def locate() -> tuple[str, int]:
            host, port = await sentinels.discover_master(settings.redis_sentinel_master)
            return str(host), int(port)

        return MultiplexedConnection(
            template, settings.redis_timeout, username=username, password=password, locate=locate
        )
    return MultiplexedConnection(
        settings.redis_url, settings.redis_timeout, username=username, password=password
    )


@dataclass(frozen=True, slots=True)
class RedisConnections:
    """The three ways this process talks to Redis.

    :param pool: redis-py client for operator calls, probes and script loading.
    :param blocking: redis-py client for reads that wait (``XREAD BLOCK``).
    :param pipelined: the decision path's connection (``multiplex.py``), one per master on a
        cluster (``cluster.py``).
    :param cluster: whether the topology is a Redis Cluster (streams of different slots are
        read apart).
    """

    pool: Client
    blocking: Client
    pipelined: Pipelined
    cluster: bool = False
    sentinel: Sentinel | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisConnections:
        """Connections to ``MAC_REDIS_URL``; each connects on first use."""
        sentinel = sentinel_of(settings) if settings.redis_type == "sentinel" else None
        return cls(
            pool=redis_client(settings, sentinel=sentinel),
            blocking=redis_client(settings, blocking_reads=True, sentinel=sentinel),
            pipelined=pipelined_of(settings, sentinel),
            cluster=settings.redis_type == "cluster",
            sentinel=sentinel,
        )

    async def close(self) -> None:
        """Close all three (and the connections to the sentinels)."""
        self.pipelined.close()
        await self.pool.aclose()
        await self.blocking.aclose()
        if self.sentinel is not None:
            for client in self.sentinel.sentinels:
                await client.aclose()

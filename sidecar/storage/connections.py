"""The Redis connections of one process: a pool for operator calls and probes, a pool whose
reads may block (``XREAD BLOCK``), and the pipelined connection(s) of the decision path; on a
single Redis, behind Sentinel, or on a Redis Cluster (``MAC_REDIS_TYPE``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

from sidecar.storage.cluster import ClusterConnections
from sidecar.storage.multiplex import MultiplexedConnection

# How long one XREAD of WatchEvents waits for new events.
WATCH_BLOCK_MS = 1000

Client = Redis | RedisCluster
Pipelined = MultiplexedConnection | ClusterConnections


@dataclass(frozen=True, slots=True)
class RedisOptions:
    """Where Redis is and how this process talks to it (the ``MAC_REDIS_*`` settings).

    :param urls: the one Redis (``redis://``, ``rediss://`` or ``unix://``), the seed nodes of
        a cluster, or the sentinels.
    :param topology: ``single`` (one Redis, or a proxy), ``cluster`` or ``sentinel``.
    :param timeout: seconds to wait for one reply, and for a connection.
    :param max_connections: of each pool.
    :param username: of the Redis servers, when not in the URL ("": none).
    :param password: of the Redis servers, when not in the URL ("": none).
    :param sentinel_master: the name the sentinels monitor the master under.
    :param sentinel_username: of the sentinels themselves ("": the URL's, if any).
    :param sentinel_password: of the sentinels themselves ("": the URL's, if any).
    """

    urls: tuple[str, ...]
    topology: str
    timeout: float
    max_connections: int
    username: str = ""
    password: str = field(default="", repr=False)
    sentinel_master: str = ""
    sentinel_username: str = ""
    sentinel_password: str = field(default="", repr=False)


def _timeouts(options: RedisOptions, blocking_reads: bool) -> dict[str, Any]:
    read_timeout = options.timeout + (WATCH_BLOCK_MS / 1000 if blocking_reads else 0)
    return {"socket_timeout": read_timeout, "socket_connect_timeout": options.timeout}


def _credentials(options: RedisOptions) -> dict[str, Any]:
    found: dict[str, Any] = {}
    if options.username:
        found["username"] = options.username
    if options.password:
        found["password"] = options.password
    return found


def redis_client(
    options: RedisOptions,
    *,
    blocking_reads: bool = False,
    sentinel: Sentinel | None = None,
) -> Client:
    """A redis-py client of the configured topology: bounded waits, one immediate retry, no
    backoff.

    A caller waits at most about two Redis timeouts; retrying longer would only hold up
    routing while Redis is away. ``blocking_reads`` allows for ``XREAD BLOCK``.
    """
    if options.topology == "cluster":
        return _cluster_client(options, blocking_reads)
    if options.topology == "sentinel":
        master: Redis = (sentinel or sentinel_of(options)).master_for(
            options.sentinel_master,
            max_connections=options.max_connections,
            retry=Retry(NoBackoff(), 1),
            **_timeouts(options, blocking_reads),
        )
        return master
    pool = BlockingConnectionPool.from_url(
        options.urls[0],
        max_connections=options.max_connections,
        timeout=options.timeout,
        retry=Retry(NoBackoff(), 1),
        **_credentials(options),
        **_timeouts(options, blocking_reads),
    )
    return Redis.from_pool(pool)


def _cluster_client(options: RedisOptions, blocking_reads: bool) -> RedisCluster:
    urls = options.urls
    params = parse_url(urls[0])
    tls = urlsplit(urls[0]).scheme == "rediss"
    ssl_options: dict[str, Any] = (
        {k: v for k, v in params.items() if k.startswith("ssl_")} if tls else {}
    )
    credentials: dict[str, Any] = {k: params[k] for k in ("username", "password") if params.get(k)}
    return RedisCluster(
        startup_nodes=[
            ClusterNode(u.hostname or "localhost", u.port or 6379) for u in map(urlsplit, urls)
        ],
        max_connections=options.max_connections,
        ssl=tls,
        **ssl_options,
        **(credentials or _credentials(options)),
        **_timeouts(options, blocking_reads),
    )


def sentinel_of(options: RedisOptions) -> Sentinel:
    """The sentinels of ``options.urls``, with their own credentials, handing out the
    master's (``options.username``/``password``)."""
    urls = [urlsplit(url) for url in options.urls]
    own: dict[str, Any] = {"socket_timeout": options.timeout}
    username = options.sentinel_username or urls[0].username
    password = options.sentinel_password or urls[0].password
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
        **_credentials(options),
    )


def pipelined_of(options: RedisOptions, sentinel: Sentinel | None = None) -> Pipelined:
    """The decision path's pipelined connection(s)."""
    username = options.username or None
    password = options.password or None
    if options.topology == "cluster":
        return ClusterConnections(
            options.urls, options.timeout, username=username, password=password
        )
    if options.topology == "sentinel":
        sentinels = sentinel or sentinel_of(options)
        first = urlsplit(options.urls[0])
        # the master's address comes from the sentinels; the URL gives scheme, TLS and db
        template = first._replace(netloc=f"{first.hostname}:{first.port or 26379}").geturl()

        async def locate() -> tuple[str, int]:
            host, port = await sentinels.discover_master(options.sentinel_master)
            return str(host), int(port)

        return MultiplexedConnection(
            template, options.timeout, username=username, password=password, locate=locate
        )
    return MultiplexedConnection(
        options.urls[0], options.timeout, username=username, password=password
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
    def from_options(cls, options: RedisOptions) -> RedisConnections:
        """Connections to the Redis of ``options``; each connects on first use."""
        sentinel = sentinel_of(options) if options.topology == "sentinel" else None
        return cls(
            pool=redis_client(options, sentinel=sentinel),
            blocking=redis_client(options, blocking_reads=True, sentinel=sentinel),
            pipelined=pipelined_of(options, sentinel),
            cluster=options.topology == "cluster",
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

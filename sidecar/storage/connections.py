"""The Redis connections of one process: a pool for operator calls and probes, a pool whose
reads may block (``XREAD BLOCK``), and the pipelined connection of the decision path."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sidecar.settings import Settings
from sidecar.storage.multiplex import MultiplexedConnection

# How long one XREAD of WatchEvents waits for new events.
WATCH_BLOCK_MS = 1000


def redis_client(settings: Settings, *, blocking_reads: bool = False) -> Redis:
    """A Redis client: bounded waits, one immediate retry, no backoff.

    A caller waits at most about two Redis timeouts; retrying longer would only hold up
    routing while Redis is away. ``blocking_reads`` allows for ``XREAD BLOCK``.
    """
    read_timeout = settings.redis_timeout + (WATCH_BLOCK_MS / 1000 if blocking_reads else 0)
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        socket_timeout=read_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)


@dataclass(frozen=True, slots=True)
class RedisConnections:
    """The three ways this process talks to Redis.

    :param pool: redis-py client for operator calls, probes and script loading.
    :param blocking: redis-py client for reads that wait (``XREAD BLOCK``).
    :param pipelined: one connection shared by every decision (``multiplex.py``).
    """

    pool: Redis
    blocking: Redis
    pipelined: MultiplexedConnection

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisConnections:
        """Connections to ``MAC_REDIS_URL``; each connects on first use."""
        return cls(
            pool=redis_client(settings),
            blocking=redis_client(settings, blocking_reads=True),
            pipelined=MultiplexedConnection(settings.redis_url, settings.redis_timeout),
        )

    async def close(self) -> None:
        """Close all three."""
        self.pipelined.close()
        await self.pool.aclose()
        await self.blocking.aclose()

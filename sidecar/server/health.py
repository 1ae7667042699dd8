"""The Redis health probe: the gRPC health statuses, ``mac_redis_up``, and the scripts loaded
again whenever Redis comes back."""

from __future__ import annotations

import asyncio
import time

from grpc_health.v1 import health, health_pb2

from sidecar import metrics
from sidecar.domain.errors import StorageError
from sidecar.domain.ports import StorageProbe
from sidecar.logs import get_logger

log = get_logger("sidecar.server.health")

# A health service name that is SERVING while the process serves at all, whatever Redis does:
# for liveness and startup probes, which must not restart pods during a Redis outage.
LIVENESS_SERVICE = "liveness"


class HealthMonitor:
    """Probes Redis every ``interval`` seconds and publishes what it found.

    :param store: what is probed, and where the scripts are loaded again.
    :param services: the health service names that follow Redis ("" is the server's).
    """

    def __init__(
        self,
        store: StorageProbe,
        servicer: health.aio.HealthServicer,
        services: tuple[str, ...],
        interval: float,
    ) -> None:
        self._store = store
        self._servicer = servicer
        self._services = services
        self._interval = interval
        self._serving: bool | None = None
        self._last_probe = time.monotonic()
        self._task: asyncio.Task[None] | None = None

    @property
    def redis_ok(self) -> bool:
        """Whether Redis answered the last probe."""
        return bool(self._serving)

    def alive(self) -> bool:
        """Whether the event loop still runs the probe (for ``/livez``)."""
        return time.monotonic() - self._last_probe < 5 * self._interval + 10

    async def start(self) -> None:
        """Mark the process live, probe once, then keep probing in the background."""
        await self._servicer.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self.probe()
        self._task = asyncio.create_task(self._loop())

    def stop(self) -> None:
        """Stop probing."""
        if self._task is not None:
            self._task.cancel()

    async def probe(self) -> None:
        """Ping Redis on every connection the service uses; load the scripts when it is back."""
        self._last_probe = time.monotonic()
        try:
            await self._store.ping()
            if not self._serving:
                await self._store.load_scripts()
            serving = True
        except StorageError as exc:
            serving = False
            if self._serving is not False:
                log.warning("redis unreachable", error=str(exc))
        if serving != self._serving:
            status = (
                health_pb2.HealthCheckResponse.SERVING
                if serving
                else health_pb2.HealthCheckResponse.NOT_SERVING
            )
            for service in self._services:
                await self._servicer.set(service, status)
            if serving and self._serving is False:
                log.info("redis reachable again")
            metrics.REDIS_UP.set(1 if serving else 0)
            self._serving = serving

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.probe()

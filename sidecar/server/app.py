"""The sidecar process: Redis clients, the gRPC servers with health and reflection, metrics,
and the lifecycle from start to graceful stop."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from sidecar import metrics
from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.clock import Clock, SystemClock
from sidecar.domain.contact import ContactKeyer
from sidecar.domain.decision import Policy
from sidecar.domain.errors import ConfigError, StorageError
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.logs import get_logger
from sidecar.server.probes import ProbeServer
from sidecar.server.workers import WORKER_ENV
from sidecar.settings import Settings, split_addr
from sidecar.storage.multiplex import MultiplexedConnection
from sidecar.storage.store import RedisStore
from sidecar.transport.services import AdminService, EnforcerService
from sidecar.usecases.admin import Admin
from sidecar.usecases.enforcer import Enforcer

log = get_logger("sidecar.server.app")

ENFORCER_SERVICE = pb.DESCRIPTOR.services_by_name["Enforcer"].full_name
ADMIN_SERVICE = admin_pb.DESCRIPTOR.services_by_name["Admin"].full_name
WATCH_BLOCK_MS = 1000
# A health service name that is SERVING while the process serves at all, whatever Redis does:
# for liveness and startup probes, which must not restart pods during a Redis outage.
LIVENESS_SERVICE = "liveness"


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


def plan_catalog(settings: Settings) -> PlanCatalog:
    """The catalog from ``MAC_PLAN_CATALOG``, or the built-in one."""
    if settings.plan_catalog:
        return PlanCatalog.from_file(settings.plan_catalog, settings.default_plan)
    return PlanCatalog(default=settings.default_plan)


def policy(settings: Settings, catalog: PlanCatalog) -> Policy:
    """What applies to workspaces without a subscription, and the notification settings."""
    trial = catalog.default.trial
    return Policy(
        limit=settings.default_limit,
        plan=catalog.default.name,
        trial_plan=trial.plan if trial else "",
        trial_limit=trial.limit if trial else 0,
        trial_days=trial.days if trial else 0,
        thresholds=",".join(str(t) for t in settings.threshold_list()),
        events_max=settings.events_max,
    )


class Sidecar:
    """One sidecar process's services: gRPC, health, reflection, metrics, Redis.

    :param settings: the configuration.
    :param clock: the time source (the wall clock unless a test injects one).
    """

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        catalog = plan_catalog(settings)
        self.redis = redis_client(settings)
        self.watch_redis = redis_client(settings, blocking_reads=True)
        self.hot = MultiplexedConnection(settings.redis_url, settings.redis_timeout)
        self.store = RedisStore(
            self.redis,
            on_reload=lambda name: metrics.SCRIPT_RELOADS.labels(name).inc(),
            blocking=self.watch_redis,
            hot=self.hot,
        )
        self.enforcer = Enforcer(
            self.store,
            ContactKeyer(settings.secret_bytes()),
            self.clock,
            policy(settings, catalog),
            retention_periods=settings.retention_periods,
            batch_max=settings.batch_max,
            failure_mode=settings.failure_mode,
        )
        self.admin = Admin(
            self.store,
            self.enforcer,
            catalog,
            self.clock,
            default_limit=settings.default_limit,
            retention_periods=settings.retention_periods,
            watch_block_ms=WATCH_BLOCK_MS,
        )
        self.health = health.aio.HealthServicer()
        self.server = self._grpc_server()
        self.admin_server = self._grpc_server() if settings.admin_addr else None
        self.workspace_gauges = metrics.WorkspaceGauges(settings.metrics_workspaces)
        self.port = 0
        self.admin_port = 0
        self.metrics_port = 0
        self._serving: bool | None = None
        self._stopping = False
        self._last_probe = time.monotonic()
        self._health_task: asyncio.Task[None] | None = None
        self._probes: ProbeServer | None = None

    def _grpc_server(self) -> grpc.aio.Server:
        # so_reuseport only for worker processes: otherwise a second sidecar on a taken port
        # must fail, not silently share it.
        reuse = 1 if self.settings.workers > 1 or os.environ.get(WORKER_ENV) else 0
        return grpc.aio.server(
            options=[("grpc.so_reuseport", reuse), ("grpc.max_receive_message_length", 16 << 20)]
        )

    def alive(self) -> bool:
        """Whether the event loop still runs its health probe (for ``/livez``)."""
        return time.monotonic() - self._last_probe < 5 * self.settings.health_interval + 10

    def ready(self) -> bool:
        """Whether calls can be served now: Redis answers and no shutdown is under way."""
        return bool(self._serving) and not self._stopping

    @property
    def redis_ok(self) -> bool:
        """Whether Redis answered the last health probe."""
        return bool(self._serving)

    def _bind(self, server: grpc.aio.Server, addr: str) -> int:
        try:
            return server.add_insecure_port(addr)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {addr}: {exc}") from exc

    async def start(self) -> int:
        """Bind and start serving; return the gRPC port (useful with port 0)."""
        enforcer = EnforcerService(
            self.enforcer, self.workspace_gauges, log_requests=self.settings.log_level == "debug"
        )
        admin = AdminService(self.admin, self.settings.admin_token)
        pb_grpc.add_EnforcerServicer_to_server(enforcer, self.server)
        admin_server = self.admin_server or self.server
        admin_grpc.add_AdminServicer_to_server(admin, admin_server)
        names = [ENFORCER_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME]
        if self.admin_server is None:
            names.append(ADMIN_SERVICE)
        else:
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.admin_server)
            reflection.enable_server_reflection(
                (ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.admin_server
            )
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(names, self.server)

        self.port = self._bind(self.server, self.settings.grpc_addr)
        if self.admin_server is not None:
            self.admin_port = self._bind(self.admin_server, self.settings.admin_addr)
        else:
            self.admin_port = self.port
        if self.settings.metrics_addr:
            self._probes = ProbeServer(self.settings.metrics_addr, REGISTRY, self.alive, self.ready)
            self.metrics_port = self._probes.start()
        await self.health.set(LIVENESS_SERVICE, health_pb2.HealthCheckResponse.SERVING)
        await self._probe()
        await self.server.start()
        if self.admin_server is not None:
            await self.admin_server.start()
        self._health_task = asyncio.create_task(self._watch_health())
        return self.port

    async def _probe(self) -> None:
        self._last_probe = time.monotonic()
        try:
            await self.store.ping()
            if not self._serving:
                await self.store.load_scripts()
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
            for service in ("", ENFORCER_SERVICE, ADMIN_SERVICE):
                await self.health.set(service, status)
            if serving and self._serving is False:
                log.info("redis reachable again")
            metrics.REDIS_UP.set(1 if serving else 0)
            self._serving = serving

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval)
            await self._probe()

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, let in-flight ones finish for ``grace`` seconds, then close."""
        self._stopping = True
        if self._health_task is not None:
            self._health_task.cancel()
        await self.health.enter_graceful_shutdown()
        wait = self.settings.shutdown_grace if grace is None else grace
        servers = [self.server] + ([self.admin_server] if self.admin_server else [])
        await asyncio.gather(*(server.stop(wait) for server in servers))
        if self._probes is not None:
            self._probes.stop()
        self.hot.close()
        await self.redis.aclose()
        await self.watch_redis.aclose()


async def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sidecar = Sidecar(settings)
    port = await sidecar.start()
    host, _ = split_addr(settings.grpc_addr)
    admin_host = split_addr(settings.admin_addr)[0] if sidecar.admin_server else host
    log.info(
        "listening",
        grpc=f"{host}:{port}",
        admin=f"{admin_host}:{sidecar.admin_port}",
        admin_auth=bool(settings.admin_token),
        metrics=settings.metrics_addr or None,
        metrics_port=sidecar.metrics_port or None,
        redis_ok=sidecar.redis_ok,
    )
    if not settings.admin_token:
        log.warning("the Admin service is open: set MAC_ADMIN_TOKEN outside development")
    await stop.wait()
    log.info("shutting down", grace_seconds=settings.shutdown_grace)
    await sidecar.stop()

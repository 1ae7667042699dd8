"""The gRPC transport: the Enforcer servicer, the one mapping from errors to status codes, and
the process that serves it with health, reflection and metrics."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import start_http_server
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from mac_sidecar import metrics, wire
from mac_sidecar.clock import Clock, SystemClock
from mac_sidecar.contact import ContactKeyer
from mac_sidecar.decision import Decision
from mac_sidecar.enforcer import Enforcer
from mac_sidecar.errors import (
    ConfigError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StorageError,
    Unauthenticated,
)
from mac_sidecar.gen.mac.v1 import enforcer_pb2 as pb
from mac_sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from mac_sidecar.logs import get_logger
from mac_sidecar.settings import Settings, split_addr
from mac_sidecar.store import RedisStore

log = get_logger("mac_sidecar.server")
T = TypeVar("T")
M = TypeVar("M")

ENFORCER_SERVICE = pb.DESCRIPTOR.services_by_name["Enforcer"].full_name


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status of an error; the only place errors become status codes.

    Anything a caller sent maps to a 4xx-like code naming the problem; a Redis that cannot be
    reached is UNAVAILABLE, which clients may retry; INTERNAL is left for our own faults, whose
    details stay in the log rather than going to the caller.
    """
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, FailedPrecondition):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, str(exc)
    if isinstance(exc, StorageError) and exc.transient:
        return grpc.StatusCode.UNAVAILABLE, "the counting backend (Redis) is unavailable"
    return grpc.StatusCode.INTERNAL, "internal error; the sidecar's log has the details"


class _Instrumented:
    """Runs one RPC: times it, counts it by status, turns errors into a status."""

    def __init__(self) -> None:
        self._ok: dict[str, Any] = {}
        self._seconds: dict[str, Any] = {}

    async def _unary(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        call: Callable[[], Awaitable[T]],
        to_message: Callable[[T], M],
    ) -> M:
        started = time.perf_counter()
        try:
            message = to_message(await call())
        except Exception as exc:
            code, details = status_for(exc)
            metrics.REQUESTS.labels(method, code.name).inc()
            metrics.REQUEST_SECONDS.labels(method).observe(time.perf_counter() - started)
            if code is grpc.StatusCode.INTERNAL:
                log.error("rpc failed", method=method, exc_info=exc)
            elif code is grpc.StatusCode.UNAVAILABLE:
                log.warning("rpc failed", method=method, error=str(exc))
            await context.abort(code, details)
        ok = self._ok.get(method)
        if ok is None:
            ok = self._ok[method] = metrics.REQUESTS.labels(method, "OK")
            self._seconds[method] = metrics.REQUEST_SECONDS.labels(method)
        ok.inc()
        self._seconds[method].observe(time.perf_counter() - started)
        return message


def _counted(method: str) -> Callable[[Decision], pb.Decision]:
    by_reason: dict[int, Any] = {}

    def convert(decision: Decision) -> pb.Decision:
        counter = by_reason.get(decision.reason)
        if counter is None:
            counter = by_reason[decision.reason] = metrics.DECISIONS.labels(
                method, decision.reason.name
            )
        counter.inc()
        return wire.decision_message(decision)

    return convert


class EnforcerService(_Instrumented):
    """``mac.v1.Enforcer``: the hot path."""

    def __init__(self, enforcer: Enforcer) -> None:
        super().__init__()
        self._enforcer = enforcer
        self._check = _counted("Check")
        self._activate = _counted("Activate")

    async def Check(
        self, request: pb.CheckRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Decision:
        fields = wire.contact_fields(request.contact)
        return await self._unary(
            "Check",
            context,
            lambda: self._enforcer.check(request.workspace_id, fields),
            self._check,
        )

    async def Activate(
        self, request: pb.ActivateRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.Decision:
        fields = wire.contact_fields(request.contact)
        return await self._unary(
            "Activate",
            context,
            lambda: self._enforcer.activate(request.workspace_id, fields),
            self._activate,
        )

    async def ActivateBatch(
        self, request: pb.ActivateBatchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.ActivateBatchResponse:
        contacts = [wire.contact_fields(c) for c in request.contacts]
        return await self._unary(
            "ActivateBatch",
            context,
            lambda: self._enforcer.activate_batch(request.workspace_id, contacts),
            wire.batch_message,
        )


def redis_client(settings: Settings) -> Redis:
    """A Redis client for the hot path: bounded waits, one immediate retry, no backoff.

    A caller waits at most about two Redis timeouts; retrying longer would only hold up
    routing while Redis is away.
    """
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=settings.redis_timeout,
        socket_timeout=settings.redis_timeout,
        socket_connect_timeout=settings.redis_timeout,
        retry=Retry(NoBackoff(), 1),
    )
    return Redis.from_pool(pool)


class Sidecar:
    """One sidecar process's services: gRPC, health, reflection, metrics, Redis.

    :param settings: the configuration.
    :param clock: the time source (the wall clock unless a test injects one).
    """

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.redis = redis_client(settings)
        self.store = RedisStore(
            self.redis, on_reload=lambda name: metrics.SCRIPT_RELOADS.labels(name).inc()
        )
        self.enforcer = Enforcer(
            self.store,
            ContactKeyer(settings.secret_bytes()),
            self.clock,
            default_limit=settings.default_limit,
            retention_periods=settings.retention_periods,
            batch_max=settings.batch_max,
            failure_mode=settings.failure_mode,
        )
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", 16 * 1024 * 1024),
            ]
        )
        self.port = 0
        self._serving: bool | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._metrics_server: Any = None

    @property
    def redis_ok(self) -> bool:
        """Whether Redis answered the last health probe."""
        return bool(self._serving)

    async def start(self) -> int:
        """Bind and start serving; return the gRPC port (useful with port 0)."""
        pb_grpc.add_EnforcerServicer_to_server(EnforcerService(self.enforcer), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (ENFORCER_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        try:
            self.port = self.server.add_insecure_port(self.settings.grpc_addr)
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {self.settings.grpc_addr}: {exc}") from exc
        if self.settings.metrics_addr:
            host, port = split_addr(self.settings.metrics_addr)
            try:
                self._metrics_server, _ = start_http_server(port, host)
            except OSError as exc:
                raise ConfigError(
                    f"cannot listen on {self.settings.metrics_addr}: {exc.strerror}"
                ) from exc
        await self._probe()
        await self.server.start()
        self._health_task = asyncio.create_task(self._watch_health())
        return self.port

    async def _probe(self) -> None:
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
            for service in ("", ENFORCER_SERVICE):
                await self.health.set(service, status)
            if serving and self._serving is False:
                log.info("redis reachable again")
            self._serving = serving

    async def _watch_health(self) -> None:
        while True:
            await asyncio.sleep(self.settings.health_interval)
            await self._probe()

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking calls, let in-flight ones finish for ``grace`` seconds, then close."""
        if self._health_task is not None:
            self._health_task.cancel()
        await self.health.enter_graceful_shutdown()
        await self.server.stop(self.settings.shutdown_grace if grace is None else grace)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
        await self.redis.aclose()


async def run(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM."""
    sidecar = Sidecar(settings)
    port = await sidecar.start()
    host, _ = split_addr(settings.grpc_addr)
    log.info(
        "listening",
        grpc=f"{host}:{port}",
        metrics=settings.metrics_addr or None,
        redis_ok=sidecar.redis_ok,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down", grace_seconds=settings.shutdown_grace)
    await sidecar.stop()

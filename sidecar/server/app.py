"""The sidecar process: the composition of storage, use cases and services, the gRPC servers
with health and reflection, and the lifecycle from start to graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import os

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import REGISTRY

from sidecar import metrics
from sidecar.domain.clock import Clock, SystemClock
from sidecar.domain.contact import CONTACT_MAX_BYTES, ContactKeyer
from sidecar.domain.errors import ConfigError
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.logs import get_logger
from sidecar.server.admins import admin_access
from sidecar.server.closing import period_closing
from sidecar.server.engines import engine
from sidecar.server.forgetting import forgetting, link_expiry
from sidecar.server.health import HealthMonitor
from sidecar.server.probes import ProbeServer
from sidecar.server.terms import plan_catalog, policy
from sidecar.server.tls import CertificateFiles, ServerTLS
from sidecar.server.uds import SocketPath
from sidecar.server.webhooks import DeliveryTelemetry, HttpReceiver, consumer_name
from sidecar.server.workers import WORKER_ENV
from sidecar.settings import Settings
from sidecar.storage.audit import RedisAuditTrail
from sidecar.storage.closing import RedisPeriodClosing
from sidecar.storage.connections import (
    WATCH_BLOCK_MS,
    RedisConnections,
    RedisOptions,
    redis_client,
)
from sidecar.storage.forgetting import RedisForgetting
from sidecar.storage.journal import FileJournal
from sidecar.storage.store import RedisStore
from sidecar.storage.webhooks import WebhookStreams
from sidecar.transport.admin_service import AdminService
from sidecar.transport.enforcer_service import EnforcerService
from sidecar.transport.runner import Gate
from sidecar.usecases.admin import Admin
from sidecar.usecases.audit import AuditTrail
from sidecar.usecases.contacts import ContactReader
from sidecar.usecases.delivery import POLL_SECONDS, SESSIONS, WebhookDeliverer
from sidecar.usecases.enforcer import Enforcer
from sidecar.usecases.events import EventWatch
from sidecar.usecases.identities import Identities
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.outage import OutageAnswers
from sidecar.usecases.periods import Periods
from sidecar.usecases.replay import JournalReplay
from sidecar.usecases.statements import Statements
from sidecar.usecases.warm import WarmPath

log = get_logger("sidecar.server")

ENFORCER_SERVICE = pb.DESCRIPTOR.services_by_name["Enforcer"].full_name
ADMIN_SERVICE = admin_pb.DESCRIPTOR.services_by_name["Admin"].full_name
# The largest valid request is a batch of MAC_BATCH_MAX contacts of the largest valid size.
_RECEIVE_OVERHEAD = 64 << 10


def redis_options(settings: Settings) -> RedisOptions:
    """Where Redis is and how to reach it, from the ``MAC_REDIS_*`` settings: the one place
    storage's options are made of them."""
    return RedisOptions(
        urls=tuple(settings.redis_urls()),
        topology=settings.redis_type,
        timeout=settings.redis_timeout,
        max_connections=settings.redis_max_connections,
        username=settings.redis_username,
        password=settings.redis_password,
        sentinel_master=settings.redis_sentinel_master,
        sentinel_username=settings.redis_sentinel_username,
        sentinel_password=settings.redis_sentinel_password,
    )


def webhook_deliverer(
    settings: Settings, *, poll_s: float = POLL_SECONDS, sessions: int = SESSIONS
) -> WebhookDeliverer:
    """A deliverer to ``MAC_WEBHOOK_URL`` on a Redis pool of its own and the wall clock:
    webhooks never wait on the decision path."""
    return WebhookDeliverer(
        WebhookStreams(redis_client(redis_options(settings)), consumer_name()),
        HttpReceiver(settings.webhook_url, settings.webhook_timeout_ms / 1000, sessions),
        DeliveryTelemetry(),
        settings.webhook_secret.encode(),
        timeout_ms=settings.webhook_timeout_ms,
        max_backoff_ms=settings.webhook_max_backoff_ms,
        poll_s=poll_s,
        sessions=sessions,
    )


class Sidecar:
    """One sidecar process's services: gRPC, health, reflection, metrics, Redis.

    :param settings: the configuration.
    :param clock: the time source (the wall clock unless a test injects one).
    """

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        # read (and checked) first: a bad certificate stops the start before anything opens
        self.tls = ServerTLS.from_settings(settings)
        # and the engine: a missing native extra stops it before anything opens too
        self.engine = engine(settings)
        # and who may call the Admin service: a bad tokens file, or an Admin service without
        # a token beyond this host, stops it too
        self.admin_access = admin_access(settings)
        catalog = plan_catalog(settings)
        self.connections = RedisConnections.from_options(redis_options(settings))
        self.store = RedisStore(
            self.connections,
            wait_replicas=settings.redis_wait_replicas,
            wait_timeout_ms=settings.redis_wait_timeout_ms,
            audit_retention_days=settings.audit_retention_days,
        )
        contacts = ContactReader(ContactKeyer(settings.secret_bytes()), settings.batch_max)
        periods = Periods(
            self.store,
            settings.retention_periods,
            require_subscription=settings.require_subscription,
        )
        # the outage journal: contacts allowed while Redis is away, counted once it is back
        self.journal = (
            FileJournal(settings.journal_dir, settings.journal_max_entries)
            if settings.journal_dir
            else None
        )
        known = KnownContacts(settings.known_contacts_max)
        outage = OutageAnswers(settings.failure_mode, known, periods, self.clock, self.journal)
        self.warm = WarmPath(known, contacts, periods, self.clock, settings.warm_seconds)
        closing_store = RedisPeriodClosing(self.connections.pool)
        forget_store = RedisForgetting(
            self.connections.pool,
            cluster=self.connections.cluster,
            audit_retention_days=settings.audit_retention_days,
        )
        # the links sweep runs after each step of the closing sweep, under its lease
        self.link_expiry = link_expiry(settings, forget_store, closing_store, self.clock)
        self.closing = period_closing(
            settings,
            closing_store,
            self.clock,
            policy(settings, catalog),
            self.link_expiry.after_step,
        )
        self.statements = Statements(self.closing, closing_store, self.clock)
        self.enforcer = Enforcer(
            self.store,
            contacts,
            periods,
            self.clock,
            policy(settings, catalog),
            known=known,
            outage=outage,
            warm=self.warm,
            lateness_seconds=settings.lateness_seconds,
            clock_skew_seconds=settings.clock_skew_seconds,
            after_decision=self.closing.note_decision,
        )
        self.replay = (
            JournalReplay(
                self.store,
                self.journal,
                periods,
                policy(settings, catalog),
                known,
                outage,
                ready=lambda: self.health.redis_ok,
                clock=self.clock,
            )
            if self.journal is not None
            else None
        )
        self.identities = Identities(self.store, contacts, periods, self.enforcer, self.clock)
        self.forgetting = forgetting(
            settings, forget_store, contacts, periods, self.enforcer, self.clock
        )
        self.admin = Admin(
            self.store,
            self.enforcer,
            periods,
            catalog,
            self.clock,
            default_limit=settings.default_limit,
            retention_periods=settings.retention_periods,
            default_thresholds=tuple(settings.threshold_list()),
            closing=self.closing,
        )
        self.audit = AuditTrail(
            RedisAuditTrail(self.connections.pool), self.clock, settings.audit_retention_days
        )
        self.events = EventWatch(self.store, block_ms=WATCH_BLOCK_MS)
        self.gate = Gate(settings.max_concurrent_rpcs)
        self.health_servicer = health.aio.HealthServicer()
        self.health = HealthMonitor(
            self.store,
            self.health_servicer,
            ("", ENFORCER_SERVICE, ADMIN_SERVICE),
            settings.health_interval,
        )
        self.server = self._grpc_server()
        self.admin_server = self._grpc_server() if settings.admin_addr else None
        self.workspace_gauges = metrics.WorkspaceGauges(settings.metrics_workspaces)
        self.webhooks = webhook_deliverer(settings) if settings.webhook_url else None
        # beside TCP, for a caller in the same pod; TLS as on MAC_GRPC_ADDR. An engine that
        # binds one listener per server (native) serves it from a second server.
        self.socket = SocketPath(settings.grpc_uds) if settings.grpc_uds else None
        self.socket_server = (
            self._grpc_server()
            if self.socket is not None and self.engine.one_listener_per_server
            else None
        )
        self.port = 0
        self.admin_port = 0
        self.metrics_port = 0
        self._stopping = False
        self._probes: ProbeServer | None = None

    def _grpc_server(self) -> grpc.aio.Server:
        # so_reuseport only for worker processes: otherwise a second sidecar on a taken port
        # must fail, not silently share it.
        reuse = 1 if self.settings.workers > 1 or os.environ.get(WORKER_ENV) else 0
        receive = self.settings.batch_max * CONTACT_MAX_BYTES + _RECEIVE_OVERHEAD
        return self.engine.server(
            [
                ("grpc.so_reuseport", reuse),
                ("grpc.max_receive_message_length", receive),
            ],
        )

    @property
    def servers(self) -> list[grpc.aio.Server]:
        """Every gRPC server of the process: the Enforcer's, the socket's, the Admin's."""
        return [
            server
            for server in (self.server, self.socket_server, self.admin_server)
            if server is not None
        ]

    def alive(self) -> bool:
        """Whether the event loop still runs its health probe (for ``/livez``)."""
        return self.health.alive()

    def ready(self) -> bool:
        """Whether calls can be served now: Redis answers and no shutdown is under way."""
        return self.health.redis_ok and not self._stopping

    @property
    def redis_ok(self) -> bool:
        """Whether Redis answered the last health probe."""
        return self.health.redis_ok

    def _bind(self, server: grpc.aio.Server, addr: str, tls: CertificateFiles | None) -> int:
        try:
            if tls is None:
                return server.add_insecure_port(addr)
            return server.add_secure_port(addr, tls.credentials())
        except RuntimeError as exc:
            raise ConfigError(f"cannot listen on {addr}: {exc}") from exc

    def _add_services(self) -> None:
        settings = self.settings
        enforcer = EnforcerService(
            self.enforcer,
            self.warm,
            self.workspace_gauges,
            log_requests=settings.log_level == "debug",
            gate=self.gate,
            clock=self.clock,
        )
        admin = AdminService(
            self.admin,
            self.identities,
            self.events,
            self.admin_access,
            max_streams=settings.max_streams,
            gate=self.gate,
            statements=self.statements,
            audit=self.audit,
            forgetting=self.forgetting,
        )
        enforcer_service = pb.DESCRIPTOR.services_by_name["Enforcer"]
        admin_service = admin_pb.DESCRIPTOR.services_by_name["Admin"]
        add = self.engine.add_service
        names = [ENFORCER_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME]
        if self.admin_server is None:
            names.append(ADMIN_SERVICE)
        else:
            add(self.admin_server, admin_service, admin, settings.batch_max)
            health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, self.admin_server)
            reflection.enable_server_reflection(
                (ADMIN_SERVICE, health.SERVICE_NAME, reflection.SERVICE_NAME), self.admin_server
            )
        for server in (self.server, self.socket_server):
            if server is None:
                continue
            add(server, enforcer_service, enforcer, settings.batch_max)
            if self.admin_server is None:
                add(server, admin_service, admin, settings.batch_max)
            health_pb2_grpc.add_HealthServicer_to_server(self.health_servicer, server)
            reflection.enable_server_reflection(names, server)

    async def start(self) -> int:
        """Bind and start serving; return the gRPC port (useful with port 0)."""
        self._add_services()
        tls = self.tls
        self.port = self._bind(self.server, self.settings.grpc_addr, tls.enforcer if tls else None)
        if self.socket is not None:
            self.socket.prepare()
            self._bind(
                self.socket_server or self.server,
                self.socket.address,
                tls.enforcer if tls else None,
            )
            self.socket.open_to_all()
        if self.admin_server is not None:
            self.admin_port = self._bind(
                self.admin_server, self.settings.admin_addr, tls.admin if tls else None
            )
        else:
            self.admin_port = self.port
        if self.settings.metrics_addr:
            self._probes = ProbeServer(self.settings.metrics_addr, REGISTRY, self.alive, self.ready)
            self.metrics_port = self._probes.start()
        await self.health.start()
        if self.replay is not None:
            self.replay.start(self.settings.health_interval)
        if self.webhooks is not None:
            self.webhooks.start()
        self.closing.start()
        for server in self.servers:
            await server.start()
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop taking calls: new ones are answered ``UNAVAILABLE`` while the in-flight ones
        finish, for ``grace`` seconds at most; then close."""
        self._stopping = True
        self.gate.close()
        self.health.stop()
        await self.health_servicer.enter_graceful_shutdown()
        wait = self.settings.shutdown_grace if grace is None else grace
        # webhook requests in flight get the same grace; what they leave stays pending
        webhooks = asyncio.create_task(self.webhooks.stop(wait)) if self.webhooks else None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.gate.drained.wait(), wait)
        # The unary calls are done (or out of time); what is left are event streams, which
        # never end by themselves: they are cut now, and their callers resume with after_id.
        await asyncio.gather(*(server.stop(0) for server in self.servers))
        if self.socket is not None:
            self.socket.remove()
        if self._probes is not None:
            self._probes.stop()
        if webhooks is not None:
            await webhooks
        if self.replay is not None:
            await self.replay.stop()
        await self.closing.stop()
        if self.journal is not None:
            self.journal.close()
        await self.connections.close()

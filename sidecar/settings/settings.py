"""The Settings dataclass: every ``MAC_*`` variable, its ``sidecar serve`` flag and its default.

Every variable, its flag and its default are visible in the field list below. A flag wins over
its variable, which wins over the default. The rules they must pass are in ``checks.py``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from sidecar.settings.addresses import redacted
from sidecar.settings.checks import check
from sidecar.settings.parsing import parse_thresholds, read_secret, read_values
from sidecar.settings.redis import RedisSettings
from sidecar.settings.redis import setting as _setting

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
FAILURE_MODES = ("error", "allow", "deny")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
GRPC_ENGINES = ("grpcio", "native")


@dataclass(frozen=True)
class Settings(RedisSettings):
    """Everything the service reads from its environment (the Redis servers' settings come
    first, from ``RedisSettings``)."""

    journal_dir: str = _setting(
        "MAC_JOURNAL_DIR",
        "",
        "directory of the journal of contacts allowed while Redis was unreachable "
        "(MAC_FAILURE_MODE=allow), replayed when it answers again",
    )
    journal_max_entries: int = _setting(
        "MAC_JOURNAL_MAX_ENTRIES",
        100_000,
        "contacts the journal holds; when full, new contacts are decided as in deny mode",
        minimum=1,
        maximum=10_000_000,
    )
    known_contacts_max: int = _setting(
        "MAC_KNOWN_CONTACTS_MAX",
        100_000,
        "contacts this process remembers as counted this period, served as active while Redis "
        "is unreachable (0: none)",
        minimum=0,
        maximum=10_000_000,
    )
    grpc_addr: str = _setting(
        "MAC_GRPC_ADDR", DEFAULT_GRPC_ADDR, "host:port the Enforcer (and Admin) services listen on"
    )
    grpc_uds: str = _setting(
        "MAC_GRPC_UDS",
        "",
        "path of a Unix domain socket the Enforcer (and Admin) services also listen on, for a "
        "caller in the same pod; empty: none",
    )
    grpc_engine: str = _setting(
        "MAC_GRPC_ENGINE",
        "grpcio",
        "what serves gRPC: grpcio, or native (pygrpc-native: HTTP/2 in Rust, outside the GIL; "
        "opt-in, needs the native extra, no TLS)",
        choices=GRPC_ENGINES,
    )
    warm_seconds: float = _setting(
        "MAC_WARM_SECONDS",
        1.0,
        "a contact this process saw counted is answered ALREADY_ACTIVE without Redis while its "
        "workspace had a Redis reply this recently (0: always ask Redis)",
        minimum=0,
        maximum=60,
    )
    metrics_addr: str = _setting(
        "MAC_METRICS_ADDR", "127.0.0.1:9464", "host:port of /metrics and probes; empty turns it off"
    )
    metrics_workspaces: int = _setting(
        "MAC_METRICS_WORKSPACES",
        0,
        "export per-workspace usage gauges for at most this many workspaces (0: none)",
        minimum=0,
        maximum=10_000,
    )
    workers: int = _setting(
        "MAC_WORKERS", 1, "processes serving the same ports (SO_REUSEPORT)", minimum=1, maximum=64
    )
    worker_restart_delay: float = _setting(
        "MAC_WORKER_RESTART_DELAY",
        1.0,
        "seconds before a worker that died again soon is restarted; doubles each time",
        minimum=0.01,
        maximum=600,
    )
    worker_restart_delay_max: float = _setting(
        "MAC_WORKER_RESTART_DELAY_MAX",
        60.0,
        "the longest wait before restarting a worker that keeps dying",
        minimum=0.01,
        maximum=3600,
    )
    default_limit: int = _setting(
        "MAC_DEFAULT_LIMIT",
        100,
        "limit of a workspace that has no subscription",
        minimum=0,
        maximum=10**12,
    )
    identity_secret: str = _setting(
        "MAC_IDENTITY_SECRET",
        "",
        "key of the hashes emails and phones are stored as (at least 16 characters)",
        secret=True,
    )
    identity_secret_file: str = _setting(
        "MAC_IDENTITY_SECRET_FILE", "", "file holding the identity secret, instead of the variable"
    )
    admin_addr: str = _setting(
        "MAC_ADMIN_ADDR",
        "",
        "host:port of the Admin service; empty serves it beside the Enforcer on MAC_GRPC_ADDR",
    )
    admin_token: str = _setting(
        "MAC_ADMIN_TOKEN",
        "",
        "bearer token of the admin 'admin'; with no admin token at all the Admin service "
        "answers this host only (loopback, Unix socket), for development",
        secret=True,
    )
    admin_token_file: str = _setting(
        "MAC_ADMIN_TOKEN_FILE",
        "",
        "file holding the admin token, instead of the variable; read again when it changes",
    )
    admin_tokens_file: str = _setting(
        "MAC_ADMIN_TOKENS_FILE",
        "",
        "file of 'name token' lines: named admins, each with a token of its own (audited by "
        "name); read again when it changes; beside MAC_ADMIN_TOKEN, which is the admin 'admin'",
    )
    admin_names_from_cert: bool = _setting(
        "MAC_ADMIN_NAMES_FROM_CERT",
        False,
        "with mTLS on the admin listener, a client certificate's subject CN (or first DNS SAN) "
        "names the admin instead of a token",
    )
    audit_retention_days: int = _setting(
        "MAC_AUDIT_RETENTION_DAYS",
        400,
        "days each workspace's audit records are kept",
        minimum=1,
        maximum=3_650,
    )
    tls_cert_file: str = _setting(
        "MAC_TLS_CERT_FILE",
        "",
        "PEM certificate (chain) the gRPC listeners serve TLS with; read again when it changes",
    )
    tls_key_file: str = _setting("MAC_TLS_KEY_FILE", "", "PEM private key of MAC_TLS_CERT_FILE")
    tls_client_ca_file: str = _setting(
        "MAC_TLS_CLIENT_CA_FILE",
        "",
        "PEM CA bundle; when set, callers must present a certificate it signed (mTLS)",
    )
    admin_tls_cert_file: str = _setting(
        "MAC_ADMIN_TLS_CERT_FILE",
        "",
        "a certificate of its own for the Admin listener (MAC_ADMIN_ADDR); default the Enforcer's",
    )
    admin_tls_key_file: str = _setting(
        "MAC_ADMIN_TLS_KEY_FILE", "", "PEM private key of MAC_ADMIN_TLS_CERT_FILE"
    )
    max_concurrent_rpcs: int = _setting(
        "MAC_MAX_CONCURRENT_RPCS",
        2000,
        "calls one process handles at once; more are refused with RESOURCE_EXHAUSTED",
        minimum=1,
        maximum=100_000,
    )
    max_streams: int = _setting(
        "MAC_MAX_STREAMS",
        256,
        "WatchEvents streams open at once per process; more are refused with RESOURCE_EXHAUSTED",
        minimum=1,
        maximum=100_000,
    )
    require_subscription: bool = _setting(
        "MAC_REQUIRE_SUBSCRIPTION",
        False,
        "refuse workspaces without a subscription (FAILED_PRECONDITION) instead of counting "
        "them under the default plan",
    )
    plan_catalog: str = _setting(
        "MAC_PLAN_CATALOG", "", "JSON file of plans replacing the built-in catalog"
    )
    default_plan: str = _setting(
        "MAC_DEFAULT_PLAN", "starter", "plan of a workspace that has no subscription"
    )
    thresholds: str = _setting(
        "MAC_THRESHOLDS", "80,100", "usage percentages that record an event when crossed"
    )
    events_max: int = _setting(
        "MAC_EVENTS_MAX",
        10_000,
        "events kept per workspace (older ones are trimmed)",
        minimum=10,
        maximum=10_000_000,
    )
    webhook_url: str = _setting(
        "MAC_WEBHOOK_URL",
        "",
        "URL every event is POSTed to as signed JSON (http:// or https://); empty: no webhooks",
    )
    webhook_secret: str = _setting(
        "MAC_WEBHOOK_SECRET",
        "",
        "key of the webhooks' HMAC-SHA256 signatures (X-MAC-Signature); needed with "
        "MAC_WEBHOOK_URL",
        secret=True,
    )
    webhook_timeout_ms: int = _setting(
        "MAC_WEBHOOK_TIMEOUT_MS",
        5000,
        "milliseconds one webhook request may take before it counts as failed",
        minimum=100,
        maximum=120_000,
    )
    webhook_max_backoff_ms: int = _setting(
        "MAC_WEBHOOK_MAX_BACKOFF_MS",
        60_000,
        "the longest wait, in milliseconds, between two attempts to deliver an event",
        minimum=10,
        maximum=3_600_000,
    )
    batch_max: int = _setting(
        "MAC_BATCH_MAX",
        10_000,
        "most contacts one ActivateBatch, Merge or SetExempt may carry",
        minimum=1,
        maximum=100_000,
    )
    failure_mode: str = _setting(
        "MAC_FAILURE_MODE",
        "error",
        "when Redis is unreachable: error (UNAVAILABLE), allow or deny "
        "(a BACKEND_UNAVAILABLE decision)",
        choices=FAILURE_MODES,
    )
    retention_periods: int = _setting(
        "MAC_RETENTION_PERIODS",
        2,
        "past periods whose counted contacts stay listable (counts are kept longer)",
        minimum=0,
        maximum=120,
    )
    lateness_seconds: int = _setting(
        "MAC_LATENESS_SECONDS",
        300,
        "how long after its end a period still takes events that occurred in it "
        "(occurred_at); then it closes and its statement is final",
        minimum=0,
        maximum=86_400,
    )
    clock_skew_seconds: int = _setting(
        "MAC_CLOCK_SKEW_SECONDS",
        60,
        "how far in the future an occurred_at may be (callers' clocks run ahead); "
        "further is INVALID_ARGUMENT",
        minimum=0,
        maximum=3_600,
    )
    close_sweep_seconds: float = _setting(
        "MAC_CLOSE_SWEEP_SECONDS",
        60.0,
        "seconds between sweeps that close the periods whose lateness has passed (and "
        "record TYPE_PERIOD_CLOSED) when no decision came for a workspace",
        minimum=1,
        maximum=3_600,
    )
    redis_timeout: float = _setting(
        "MAC_REDIS_TIMEOUT",
        0.5,
        "seconds to wait for one Redis reply",
        minimum=0.001,
        maximum=60,
    )
    redis_max_connections: int = _setting(
        "MAC_REDIS_MAX_CONNECTIONS",
        64,
        "Redis connections per process",
        minimum=1,
        maximum=10_000,
    )
    health_interval: float = _setting(
        "MAC_HEALTH_INTERVAL",
        1.0,
        "seconds between Redis health probes",
        minimum=0.05,
        maximum=60,
    )
    shutdown_grace: float = _setting(
        "MAC_SHUTDOWN_GRACE",
        5.0,
        "seconds in-flight calls get to finish on shutdown",
        minimum=0,
        maximum=600,
    )
    log_level: str = _setting("MAC_LOG_LEVEL", "info", "log level", choices=LOG_LEVELS)
    log_format: str = _setting(
        "MAC_LOG_FORMAT",
        "auto",
        "json, console, or auto (console on a terminal, json otherwise)",
        choices=LOG_FORMATS,
    )

    def __post_init__(self) -> None:
        check(self)

    def redis_urls(self) -> list[str]:
        """``MAC_REDIS_URL`` as its URLs: one for a single Redis, the seed nodes of a cluster,
        the sentinels."""
        return [url.strip() for url in self.redis_url.split(",") if url.strip()]

    @property
    def tls(self) -> bool:
        """Whether the gRPC listeners serve TLS."""
        return bool(self.tls_cert_file)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public().items())
        return f"Settings({shown})"

    def public(self) -> dict[str, Any]:
        """The settings with every secret redacted; safe to log."""
        return redacted({f.name: getattr(self, f.name) for f in fields(self)}, fields(self))

    def threshold_list(self) -> list[int]:
        """The thresholds as sorted percentages.

        :raise ConfigError: unless they are whole numbers from 1 to 1000.
        """
        return parse_thresholds(self.thresholds)

    def secret_bytes(self) -> bytes:
        """The identity secret, from the variable or the file.

        :raise ConfigError: when neither holds a secret of at least 16 characters.
        """
        return read_secret(self.identity_secret, self.identity_secret_file)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read the ``MAC_*`` variables of ``environ``, then apply ``overrides`` (flags).

        :raise ConfigError: naming the variable that does not parse or is out of range.
        """
        return cls(**read_values(fields(cls), environ, overrides))

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)

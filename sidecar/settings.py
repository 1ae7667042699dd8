"""Settings: one frozen dataclass, read once from ``sidecar serve`` flags and ``MAC_*`` variables.

Every variable, its flag and its default are visible in the field list below. A flag wins over
its variable, which wins over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sidecar.domain.errors import ConfigError

DEFAULT_GRPC_ADDR = "127.0.0.1:50051"
FAILURE_MODES = ("error", "allow", "deny")
REDIS_TYPES = ("single", "cluster", "sentinel")
LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")


def _setting(env: str, default: Any, help: str, *, secret: bool = False, **extra: Any) -> Any:
    return field(default=default, metadata={"env": env, "help": help, "secret": secret, **extra})


@dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment."""

    redis_url: str = _setting(
        "MAC_REDIS_URL",
        "redis://127.0.0.1:6379/0",
        "Redis to keep state in (redis://, rediss:// or unix://); for a cluster its seed nodes, "
        "for sentinel the sentinels, comma separated",
    )
    redis_type: str = _setting(
        "MAC_REDIS_TYPE",
        "single",
        "single (one Redis, or a proxy), cluster (Redis Cluster) or sentinel",
        choices=REDIS_TYPES,
    )
    redis_username: str = _setting(
        "MAC_REDIS_USERNAME",
        "",
        "user of the Redis servers (the cluster's nodes, sentinel's master) when not in the URL",
    )
    redis_password: str = _setting(
        "MAC_REDIS_PASSWORD",
        "",
        "password of the Redis servers (the cluster's nodes, sentinel's master) when not in "
        "the URL",
        secret=True,
    )
    redis_sentinel_master: str = _setting(
        "MAC_REDIS_SENTINEL_MASTER",
        "",
        "the name the sentinels monitor the master under (MAC_REDIS_TYPE=sentinel)",
    )
    redis_sentinel_username: str = _setting(
        "MAC_REDIS_SENTINEL_USERNAME", "", "user of the sentinels themselves, when they need one"
    )
    redis_sentinel_password: str = _setting(
        "MAC_REDIS_SENTINEL_PASSWORD",
        "",
        "password of the sentinels themselves, when they need one",
        secret=True,
    )
    redis_wait_replicas: int = _setting(
        "MAC_REDIS_WAIT_REPLICAS",
        0,
        "replicas that must have an admission before it is answered (WAIT); 0: none",
        minimum=0,
        maximum=16,
    )
    redis_wait_timeout_ms: int = _setting(
        "MAC_REDIS_WAIT_TIMEOUT_MS",
        100,
        "how long an admission waits for MAC_REDIS_WAIT_REPLICAS; fewer in time: UNAVAILABLE",
        minimum=1,
        maximum=10_000,
    )
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
        "bearer token the Admin service requires; empty leaves it open (development only)",
        secret=True,
    )
    admin_token_file: str = _setting(
        "MAC_ADMIN_TOKEN_FILE",
        "",
        "file holding the admin token, instead of the variable; read again when it changes",
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
        for f in fields(self):
            value = getattr(self, f.name)
            if "minimum" in f.metadata and value < f.metadata["minimum"]:
                raise ConfigError(f"{f.metadata['env']} must be at least {f.metadata['minimum']}")
            if "maximum" in f.metadata and value > f.metadata["maximum"]:
                raise ConfigError(f"{f.metadata['env']} must be at most {f.metadata['maximum']:,}")
            if "choices" in f.metadata and value not in f.metadata["choices"]:
                choices = ", ".join(f.metadata["choices"])
                raise ConfigError(f"{f.metadata['env']} must be one of {choices}, not {value!r}")
        self.threshold_list()
        if self.failure_mode == "allow" and not self.journal_dir:
            raise ConfigError(
                "MAC_FAILURE_MODE=allow needs MAC_JOURNAL_DIR: the directory where contacts "
                "allowed while Redis is unreachable are kept until they are counted"
            )
        self._check_files()
        if self.admin_addr:
            _split_addr(self.admin_addr, "MAC_ADMIN_ADDR")
        self._check_redis()
        _split_addr(self.grpc_addr, "MAC_GRPC_ADDR")
        if self.grpc_uds and self.workers > 1:
            raise ConfigError(
                "MAC_GRPC_UDS takes one process: a socket file cannot be shared by "
                "MAC_WORKERS processes (run one sidecar per socket, or leave MAC_GRPC_UDS empty)"
            )
        if self.metrics_addr:
            _split_addr(self.metrics_addr, "MAC_METRICS_ADDR")
        self._check_webhook()

    def redis_urls(self) -> list[str]:
        """``MAC_REDIS_URL`` as its URLs: one for a single Redis, the seed nodes of a cluster,
        the sentinels."""
        return [url.strip() for url in self.redis_url.split(",") if url.strip()]

    def _check_redis(self) -> None:
        urls = self.redis_urls()
        if not urls:
            raise ConfigError("MAC_REDIS_URL is empty")
        for url in urls:
            if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
                raise ConfigError("MAC_REDIS_URL must start with redis://, rediss:// or unix://")
        if self.redis_type == "single" and len(urls) > 1:
            raise ConfigError(
                "MAC_REDIS_URL names several servers: set MAC_REDIS_TYPE=cluster or sentinel"
            )
        if self.redis_type != "single" and any(urlsplit(u).scheme == "unix" for u in urls):
            raise ConfigError(f"MAC_REDIS_TYPE={self.redis_type} needs redis:// or rediss:// URLs")
        if self.redis_wait_replicas and self.redis_wait_timeout_ms >= self.redis_timeout * 1000:
            raise ConfigError(
                "MAC_REDIS_WAIT_TIMEOUT_MS must be below MAC_REDIS_TIMEOUT: an admission waits "
                "for its replicas within the time a Redis reply may take"
            )
        if self.redis_type == "sentinel" and not self.redis_sentinel_master:
            raise ConfigError("MAC_REDIS_TYPE=sentinel needs MAC_REDIS_SENTINEL_MASTER")

    def _check_files(self) -> None:
        pairs = (
            ("MAC_TLS_CERT_FILE", self.tls_cert_file, "MAC_TLS_KEY_FILE", self.tls_key_file),
            (
                "MAC_ADMIN_TLS_CERT_FILE",
                self.admin_tls_cert_file,
                "MAC_ADMIN_TLS_KEY_FILE",
                self.admin_tls_key_file,
            ),
        )
        for cert_env, cert, key_env, key in pairs:
            if bool(cert) != bool(key):
                raise ConfigError(f"{cert_env} and {key_env} go together: set both or neither")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError("MAC_TLS_CLIENT_CA_FILE needs MAC_TLS_CERT_FILE and MAC_TLS_KEY_FILE")
        if self.admin_tls_cert_file and not self.admin_addr:
            raise ConfigError(
                "MAC_ADMIN_TLS_CERT_FILE needs MAC_ADMIN_ADDR (a listener of its own)"
            )
        if self.admin_tls_cert_file and not self.tls_cert_file:
            raise ConfigError("MAC_ADMIN_TLS_CERT_FILE needs MAC_TLS_CERT_FILE as well")
        if self.worker_restart_delay > self.worker_restart_delay_max:
            raise ConfigError(
                "MAC_WORKER_RESTART_DELAY must not exceed MAC_WORKER_RESTART_DELAY_MAX"
            )
        if self.admin_token and self.admin_token_file:
            raise ConfigError("set MAC_ADMIN_TOKEN or MAC_ADMIN_TOKEN_FILE, not both")

    def _check_webhook(self) -> None:
        if not self.webhook_url:
            return
        parts = urlsplit(self.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "MAC_WEBHOOK_URL must be an http:// or https:// URL with a host, "
                f"not {redact_endpoint(self.webhook_url)!r}"
            )
        if not self.webhook_secret:
            raise ConfigError(
                "MAC_WEBHOOK_URL needs MAC_WEBHOOK_SECRET, the key its signatures are made with "
                "(e.g. `openssl rand -hex 32`)"
            )

    @property
    def tls(self) -> bool:
        """Whether the gRPC listeners serve TLS."""
        return bool(self.tls_cert_file)

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.public().items())
        return f"Settings({shown})"

    def public(self) -> dict[str, Any]:
        """The settings with every secret redacted; safe to log."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"]:
                value = "<set>" if value else "<unset>"
            elif f.name == "redis_url":
                value = ",".join(redact_url(url) for url in self.redis_urls())
            elif f.name == "webhook_url":
                value = redact_endpoint(value)
            out[f.name] = value
        return out

    def threshold_list(self) -> list[int]:
        """The thresholds as sorted percentages.

        :raise ConfigError: unless they are whole numbers from 1 to 1000.
        """
        try:
            values = sorted({int(v) for v in self.thresholds.split(",") if v.strip()})
        except ValueError:
            values = []
        if not values or not all(1 <= v <= 1000 for v in values):
            raise ConfigError(
                f"MAC_THRESHOLDS must be percentages from 1 to 1000, like 80,100; "
                f"not {self.thresholds!r}"
            )
        return values

    def secret_bytes(self) -> bytes:
        """The identity secret, from the variable or the file.

        :raise ConfigError: when neither holds a secret of at least 16 characters.
        """
        secret = self.identity_secret
        if not secret and self.identity_secret_file:
            try:
                secret = Path(self.identity_secret_file).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"MAC_IDENTITY_SECRET_FILE: {exc.strerror}") from exc
        if not secret:
            raise ConfigError(
                "no identity secret: set MAC_IDENTITY_SECRET or MAC_IDENTITY_SECRET_FILE "
                "(e.g. `openssl rand -hex 32`); it keys the hashes contacts are counted under"
            )
        if len(secret) < 16:
            raise ConfigError("the identity secret must be at least 16 characters")
        return secret.encode()

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read the ``MAC_*`` variables of ``environ``, then apply ``overrides`` (flags).

        :raise ConfigError: naming the variable that does not parse or is out of range.
        """
        values: dict[str, Any] = {}
        for f in fields(cls):
            env = f.metadata["env"]
            if env in environ:
                values[f.name] = _parse(f, environ[env], env)
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
        return cls(**values)

    def replace(self, **changes: Any) -> Settings:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def parse_bool(raw: str) -> bool:
    """``true``/``false`` (also 1/0, yes/no, on/off).

    :raise ValueError: for anything else.
    """
    text = raw.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected true or false, not {raw!r}")


def _parse(f: dataclasses.Field[Any], raw: str, env: str) -> Any:
    kind: Any = type(f.default)
    if kind is bool:
        try:
            return parse_bool(raw)
        except ValueError:
            raise ConfigError(f"{env} must be true or false, not {raw!r}") from None
    try:
        return kind(raw.strip()) if kind is not str else raw
    except ValueError:
        expected = "a whole number" if kind is int else "a number"
        raise ConfigError(f"{env} must be {expected}, not {raw!r}") from None


def _split_addr(addr: str, env: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{env} must be host:port, not {addr!r}")
    return host, int(port)


def split_addr(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:80`` too) into host and port."""
    host, port = _split_addr(addr, "address")
    return host.strip("[]"), port


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def redact_endpoint(url: str) -> str:
    """Where ``url`` goes (scheme, host, port) without what may be a credential: a password,
    and a path or query (webhook URLs often carry a token there) shown as ``***``."""
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return "***" if url else ""
    host = parts.netloc.rsplit("@", 1)[-1]
    hidden = "/***" if parts.path.strip("/") or parts.query or parts.fragment else parts.path
    return f"{parts.scheme}://{host}{hidden}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per setting to ``parser``; each defaults to "not given"."""
    for f in fields(Settings):
        kind: Any = type(f.default)
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(
            flag,
            dest=f.name,
            type=parse_bool if kind is bool else kind,
            default=None,
            choices=f.metadata.get("choices"),
            help=f"{f.metadata['help']} [{f.metadata['env']}; default {f.default!r}]",
            metavar=None if "choices" in f.metadata else f.name.split("_")[-1].upper(),
        )

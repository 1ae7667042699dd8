"""The rules a ``Settings`` must pass: each variable's range and choices, and the variables
that only make sense together."""

from __future__ import annotations

from dataclasses import fields
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from sidecar.domain.errors import ConfigError
from sidecar.settings.addresses import check_addr, redact_endpoint

if TYPE_CHECKING:
    from sidecar.settings.settings import Settings


def check(settings: Settings) -> None:
    """Check ``settings`` as a whole.

    :raise ConfigError: naming the variable (or the variables) at fault.
    """
    _check_ranges(settings)
    settings.threshold_list()
    if settings.failure_mode == "allow" and not settings.journal_dir:
        raise ConfigError(
            "MAC_FAILURE_MODE=allow needs MAC_JOURNAL_DIR: the directory where contacts "
            "allowed while Redis is unreachable are kept until they are counted"
        )
    _check_files(settings)
    if settings.admin_addr:
        check_addr(settings.admin_addr, "MAC_ADMIN_ADDR")
    _check_redis(settings)
    check_addr(settings.grpc_addr, "MAC_GRPC_ADDR")
    if settings.grpc_uds and settings.workers > 1:
        raise ConfigError(
            "MAC_GRPC_UDS takes one process: a socket file cannot be shared by "
            "MAC_WORKERS processes (run one sidecar per socket, or leave MAC_GRPC_UDS empty)"
        )
    if settings.metrics_addr:
        check_addr(settings.metrics_addr, "MAC_METRICS_ADDR")
    _check_webhook(settings)
    _check_admin_names(settings)
    if settings.grpc_engine == "native" and settings.tls_cert_file:
        raise ConfigError(
            "MAC_GRPC_ENGINE=native serves no TLS (pygrpc-native has none yet), so it cannot "
            "serve MAC_TLS_CERT_FILE's listeners: set MAC_GRPC_ENGINE=grpcio to keep TLS (and "
            "mTLS), or terminate TLS in front of the sidecar and leave MAC_TLS_* unset"
        )


def _check_ranges(settings: Settings) -> None:
    for f in fields(settings):
        value = getattr(settings, f.name)
        if "minimum" in f.metadata and value < f.metadata["minimum"]:
            raise ConfigError(f"{f.metadata['env']} must be at least {f.metadata['minimum']}")
        if "maximum" in f.metadata and value > f.metadata["maximum"]:
            raise ConfigError(f"{f.metadata['env']} must be at most {f.metadata['maximum']:,}")
        if "choices" in f.metadata and value not in f.metadata["choices"]:
            choices = ", ".join(f.metadata["choices"])
            raise ConfigError(f"{f.metadata['env']} must be one of {choices}, not {value!r}")


def _check_redis(settings: Settings) -> None:
    urls = settings.redis_urls()
    if not urls:
        raise ConfigError("MAC_REDIS_URL is empty")
    for url in urls:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("MAC_REDIS_URL must start with redis://, rediss:// or unix://")
    if settings.redis_type == "single" and len(urls) > 1:
        raise ConfigError(
            "MAC_REDIS_URL names several servers: set MAC_REDIS_TYPE=cluster or sentinel"
        )
    if settings.redis_type != "single" and any(urlsplit(u).scheme == "unix" for u in urls):
        raise ConfigError(f"MAC_REDIS_TYPE={settings.redis_type} needs redis:// or rediss:// URLs")
    if (
        settings.redis_wait_replicas
        and settings.redis_wait_timeout_ms >= settings.redis_timeout * 1000
    ):
        raise ConfigError(
            "MAC_REDIS_WAIT_TIMEOUT_MS must be below MAC_REDIS_TIMEOUT: an admission waits "
            "for its replicas within the time a Redis reply may take"
        )
    if settings.redis_type == "sentinel" and not settings.redis_sentinel_master:
        raise ConfigError("MAC_REDIS_TYPE=sentinel needs MAC_REDIS_SENTINEL_MASTER")


def _check_files(settings: Settings) -> None:
    pairs = (
        ("MAC_TLS_CERT_FILE", settings.tls_cert_file, "MAC_TLS_KEY_FILE", settings.tls_key_file),
        (
            "MAC_ADMIN_TLS_CERT_FILE",
            settings.admin_tls_cert_file,
            "MAC_ADMIN_TLS_KEY_FILE",
            settings.admin_tls_key_file,
        ),
    )
    for cert_env, cert, key_env, key in pairs:
        if bool(cert) != bool(key):
            raise ConfigError(f"{cert_env} and {key_env} go together: set both or neither")
    if settings.tls_client_ca_file and not settings.tls_cert_file:
        raise ConfigError("MAC_TLS_CLIENT_CA_FILE needs MAC_TLS_CERT_FILE and MAC_TLS_KEY_FILE")
    if settings.admin_tls_cert_file and not settings.admin_addr:
        raise ConfigError("MAC_ADMIN_TLS_CERT_FILE needs MAC_ADMIN_ADDR (a listener of its own)")
    if settings.admin_tls_cert_file and not settings.tls_cert_file:
        raise ConfigError("MAC_ADMIN_TLS_CERT_FILE needs MAC_TLS_CERT_FILE as well")
    if settings.worker_restart_delay > settings.worker_restart_delay_max:
        raise ConfigError("MAC_WORKER_RESTART_DELAY must not exceed MAC_WORKER_RESTART_DELAY_MAX")
    if settings.admin_token and settings.admin_token_file:
        raise ConfigError("set MAC_ADMIN_TOKEN or MAC_ADMIN_TOKEN_FILE, not both")


def _check_webhook(settings: Settings) -> None:
    if not settings.webhook_url:
        return
    parts = urlsplit(settings.webhook_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            "MAC_WEBHOOK_URL must be an http:// or https:// URL with a host, "
            f"not {redact_endpoint(settings.webhook_url)!r}"
        )
    if not settings.webhook_secret:
        raise ConfigError(
            "MAC_WEBHOOK_URL needs MAC_WEBHOOK_SECRET, the key its signatures are made with "
            "(e.g. `openssl rand -hex 32`)"
        )


def _check_admin_names(settings: Settings) -> None:
    if not settings.admin_names_from_cert:
        return
    if settings.grpc_engine == "native":
        raise ConfigError(
            "MAC_ADMIN_NAMES_FROM_CERT needs MAC_GRPC_ENGINE=grpcio: the native engine serves "
            "no TLS, so no client certificate can name an admin"
        )
    if not (settings.tls_cert_file and settings.tls_client_ca_file):
        raise ConfigError(
            "MAC_ADMIN_NAMES_FROM_CERT needs mTLS on the Admin listener: MAC_TLS_CERT_FILE, "
            "MAC_TLS_KEY_FILE and MAC_TLS_CLIENT_CA_FILE (the CA that signs the admins' "
            "certificates)"
        )

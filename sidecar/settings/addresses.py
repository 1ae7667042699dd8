"""Addresses and URLs in settings: ``host:port`` split and checked, and what may carry a
credential redacted before it is shown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import Field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sidecar.domain.errors import ConfigError


def check_addr(addr: str, env: str) -> tuple[str, int]:
    """``addr`` as host and port.

    :raise ConfigError: naming ``env`` unless ``addr`` is ``host:port``.
    """
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"{env} must be host:port, not {addr!r}")
    return host, int(port)


def split_addr(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (``[::1]:80`` too) into host and port."""
    host, port = check_addr(addr, "address")
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


def redacted(values: Mapping[str, Any], settings: Iterable[Field[Any]]) -> dict[str, Any]:
    """``values`` of the settings with every secret replaced by ``<set>``/``<unset>`` and the
    credentials of the Redis and webhook URLs redacted: safe to log."""
    out: dict[str, Any] = {}
    for f in settings:
        value = values[f.name]
        if f.metadata["secret"]:
            value = "<set>" if value else "<unset>"
        elif f.name == "redis_url":
            value = ",".join(redact_url(url.strip()) for url in value.split(",") if url.strip())
        elif f.name == "webhook_url":
            value = redact_endpoint(value)
        out[f.name] = value
    return out

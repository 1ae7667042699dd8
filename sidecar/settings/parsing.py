"""Settings from text: the values of ``MAC_*`` variables and flags, the thresholds, and the
identity secret from its variable or file."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sidecar.domain.errors import ConfigError

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


def parse_value(f: dataclasses.Field[Any], raw: str, env: str) -> Any:
    """The value of setting ``f`` from its variable ``env``, of the type of its default.

    :raise ConfigError: naming ``env`` when ``raw`` does not parse.
    """
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


def parse_thresholds(text: str) -> list[int]:
    """``MAC_THRESHOLDS`` as sorted percentages.

    :raise ConfigError: unless they are whole numbers from 1 to 1000.
    """
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        values = []
    if not values or not all(1 <= v <= 1000 for v in values):
        raise ConfigError(
            f"MAC_THRESHOLDS must be percentages from 1 to 1000, like 80,100; not {text!r}"
        )
    return values


def read_secret(secret: str, path: str) -> bytes:
    """The identity secret: ``secret`` (``MAC_IDENTITY_SECRET``), or else the content of the
    file at ``path`` (``MAC_IDENTITY_SECRET_FILE``).

    :raise ConfigError: when neither holds a secret of at least 16 characters.
    """
    if not secret and path:
        try:
            secret = Path(path).read_text().strip()
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


def read_values(
    settings: Iterable[dataclasses.Field[Any]],
    environ: Mapping[str, str],
    overrides: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The values of ``settings`` given by their ``MAC_*`` variables in ``environ``, then by
    ``overrides`` (flags; ``None`` is not given).

    :raise ConfigError: naming the variable that does not parse.
    """
    values: dict[str, Any] = {}
    for f in settings:
        env = f.metadata["env"]
        if env in environ:
            values[f.name] = parse_value(f, environ[env], env)
    for name, value in (overrides or {}).items():
        if value is not None:
            values[name] = value
    return values

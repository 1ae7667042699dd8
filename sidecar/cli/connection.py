"""How the client commands reach a running sidecar: addresses, token, TLS, timeouts."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import NoReturn

from sidecar.cli import exits
from sidecar.client import TLS, Client
from sidecar.domain.errors import ConfigError
from sidecar.settings import DEFAULT_GRPC_ADDR, split_addr

# A call may wait at most a day: past that a deadline is a typo, and grpc refuses huge ones.
_TIMEOUT_MAX = 86_400.0
# The variables of the client commands' TLS options (the sidecar's own MAC_TLS_* settings are
# its server certificate; these are what a caller trusts and presents).
TLS_ENV = {
    "tls": "MAC_CLI_TLS",
    "tls_ca": "MAC_CLI_TLS_CA",
    "tls_cert": "MAC_CLI_TLS_CERT",
    "tls_key": "MAC_CLI_TLS_KEY",
    "tls_server_name": "MAC_CLI_TLS_SERVER_NAME",
}
CLI_ENV = frozenset(TLS_ENV.values())
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def enforcer_addr() -> str:
    """Where the CLI finds the Enforcer: ``MAC_GRPC_ADDR``, else the sidecar's default."""
    return os.environ.get("MAC_GRPC_ADDR", DEFAULT_GRPC_ADDR)


def admin_addr() -> str:
    """Where the CLI finds the Admin service: ``MAC_ADMIN_ADDR``, else the Enforcer's."""
    return os.environ.get("MAC_ADMIN_ADDR") or enforcer_addr()


def _tls_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "TLS",
        "plaintext unless one of these (or its variable) is given: --tls-ca, --tls-cert, "
        "--tls-key and --tls-server-name turn TLS on by themselves",
    )
    group.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="TLS, trusting the system's CAs unless --tls-ca is given; --no-tls forces "
        "plaintext [MAC_CLI_TLS=1]",
    )
    group.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=os.environ.get(TLS_ENV["tls_ca"], ""),
        help="PEM CA bundle to trust for the sidecar's certificate [MAC_CLI_TLS_CA]",
    )
    group.add_argument(
        "--tls-cert",
        metavar="FILE",
        default=os.environ.get(TLS_ENV["tls_cert"], ""),
        help="PEM client certificate, for a sidecar that requires one (mTLS) [MAC_CLI_TLS_CERT]",
    )
    group.add_argument(
        "--tls-key",
        metavar="FILE",
        default=os.environ.get(TLS_ENV["tls_key"], ""),
        help="PEM private key of --tls-cert [MAC_CLI_TLS_KEY]",
    )
    group.add_argument(
        "--tls-server-name",
        metavar="NAME",
        default=os.environ.get(TLS_ENV["tls_server_name"], ""),
        help="the name the sidecar's certificate must carry, when it is not the host of "
        "--addr [MAC_CLI_TLS_SERVER_NAME]",
    )


def seconds(text: str) -> float:
    """``--timeout``'s value: seconds, more than 0 and at most a day."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (math.isfinite(value) and 0 < value <= _TIMEOUT_MAX):
        raise argparse.ArgumentTypeError(
            f"{text!r}: give seconds above 0 and at most {_TIMEOUT_MAX:,.0f}"
        )
    return value


def count(text: str) -> int:
    """A whole number of 1 or more (``--page-size``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return value


def _common(parser: argparse.ArgumentParser, timeout: float) -> None:
    parser.add_argument(
        "--timeout",
        type=seconds,
        default=timeout,
        help="seconds to wait per call (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    _tls_options(parser)


def enforcer_options(parser: argparse.ArgumentParser, timeout: float = 5.0) -> None:
    """``--addr`` of the Enforcer, ``--timeout``, ``--json``, the TLS options."""
    parser.add_argument(
        "--addr",
        default=enforcer_addr(),
        help="the sidecar's host:port, or unix:/path of its socket (MAC_GRPC_UDS) "
        "[MAC_GRPC_ADDR; default %(default)s]",
    )
    _common(parser, timeout)


def admin_options(parser: argparse.ArgumentParser, timeout: float = 10.0) -> None:
    """``--addr`` of the Admin service, ``--token``, ``--timeout``, ``--json``, the TLS
    options."""
    parser.add_argument(
        "--addr",
        default=admin_addr(),
        help="the Admin service's host:port [MAC_ADMIN_ADDR, else MAC_GRPC_ADDR; "
        "default %(default)s]",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MAC_ADMIN_TOKEN", ""),
        help="the admin token [MAC_ADMIN_TOKEN, else the content of the file MAC_ADMIN_TOKEN_FILE]",
    )
    _common(parser, timeout)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(exits.USAGE)


def token_given(ns: argparse.Namespace) -> bool:
    """Whether the command sent an admin token (from --token, the variable or the file)."""
    return hasattr(ns, "token") and bool(_token(ns))


def _token(ns: argparse.Namespace) -> str:
    token: str = getattr(ns, "token", "")
    path = os.environ.get("MAC_ADMIN_TOKEN_FILE", "")
    if token or not hasattr(ns, "token") or not path:
        return token
    try:
        return Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"MAC_ADMIN_TOKEN_FILE: cannot read {path}: {getattr(exc, 'strerror', exc)}")


def _tls_flag(ns: argparse.Namespace) -> bool:
    if ns.tls is not None:
        return bool(ns.tls)
    raw = os.environ.get(TLS_ENV["tls"], "").strip().lower()
    if raw not in _TRUE + _FALSE:
        _fail(f"MAC_CLI_TLS must be 1 or 0 (true or false), not {raw!r}")
    return raw in _TRUE


def tls_of(ns: argparse.Namespace) -> TLS | None:
    """The client's TLS from the TLS options, or ``None`` for plaintext; a bad combination or
    a file that cannot be read ends the command with one line and exit status 2."""
    if ns.tls is False:
        return None
    files = {"--tls-ca": ns.tls_ca, "--tls-cert": ns.tls_cert, "--tls-key": ns.tls_key}
    if not (_tls_flag(ns) or any(files.values()) or ns.tls_server_name):
        return None
    if bool(ns.tls_cert) != bool(ns.tls_key):
        _fail("--tls-cert and --tls-key go together: give both or neither")
    for option, path in files.items():
        if not path:
            continue
        env = TLS_ENV[option.removeprefix("--").replace("-", "_")]
        try:
            Path(path).read_bytes()
        except OSError as exc:
            _fail(f"{option} ({env}): cannot read {path}: {exc.strerror}")
    return TLS(
        ca_file=ns.tls_ca,
        cert_file=ns.tls_cert,
        key_file=ns.tls_key,
        server_name=ns.tls_server_name,
    )


def client(ns: argparse.Namespace) -> Client:
    """A client of the sidecar at ``--addr``, with ``--timeout``, the TLS options and
    ``--token`` when the command has one; failures raise ``grpc.RpcError`` for ``main`` to
    report."""
    check_addr(ns.addr)
    return Client(ns.addr, deadline=ns.timeout, token=_token(ns), tls=tls_of(ns))


def check_addr(addr: str) -> None:
    """Exit with a clear message when ``--addr`` is neither ``host:port`` nor ``unix:/path``."""
    if addr.startswith("unix:"):
        return
    try:
        split_addr(addr)
    except ConfigError:
        _fail(f"--addr must be host:port (like 127.0.0.1:50051) or unix:/path, not {addr!r}")

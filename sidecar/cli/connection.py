"""How the client commands reach a running sidecar: addresses, token, timeouts."""

from __future__ import annotations

import argparse
import os

from sidecar.client import Client
from sidecar.settings import DEFAULT_GRPC_ADDR


def enforcer_addr() -> str:
    """Where the CLI finds the Enforcer: ``MAC_GRPC_ADDR``, else the sidecar's default."""
    return os.environ.get("MAC_GRPC_ADDR", DEFAULT_GRPC_ADDR)


def admin_addr() -> str:
    """Where the CLI finds the Admin service: ``MAC_ADMIN_ADDR``, else the Enforcer's."""
    return os.environ.get("MAC_ADMIN_ADDR") or enforcer_addr()


def _common(parser: argparse.ArgumentParser, timeout: float) -> None:
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds to wait per call")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def enforcer_options(parser: argparse.ArgumentParser, timeout: float = 5.0) -> None:
    """``--addr`` of the Enforcer, ``--timeout``, ``--json``."""
    parser.add_argument(
        "--addr",
        default=enforcer_addr(),
        help="the sidecar's host:port [MAC_GRPC_ADDR; default %(default)s]",
    )
    _common(parser, timeout)


def admin_options(parser: argparse.ArgumentParser, timeout: float = 10.0) -> None:
    """``--addr`` of the Admin service, ``--token``, ``--timeout``, ``--json``."""
    parser.add_argument(
        "--addr",
        default=admin_addr(),
        help="the Admin service's host:port [MAC_ADMIN_ADDR, else MAC_GRPC_ADDR; "
        "default %(default)s]",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MAC_ADMIN_TOKEN", ""),
        help="the admin token [MAC_ADMIN_TOKEN]",
    )
    _common(parser, timeout)


def client(ns: argparse.Namespace) -> Client:
    """A client of the sidecar at ``--addr``, with ``--timeout`` and ``--token`` when the
    command has one; failures raise ``grpc.RpcError`` for ``main`` to report."""
    return Client(ns.addr, deadline=ns.timeout, token=getattr(ns, "token", ""))

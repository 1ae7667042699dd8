"""How the client commands reach a running sidecar: addresses, token, timeouts, stubs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as enforcer_grpc
from sidecar.settings import DEFAULT_GRPC_ADDR

Metadata = list[tuple[str, str]]


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


@contextmanager
def enforcer_stub(ns: argparse.Namespace) -> Iterator[enforcer_grpc.EnforcerStub]:
    """An Enforcer stub on ``--addr``."""
    with grpc.insecure_channel(ns.addr) as channel:
        yield enforcer_grpc.EnforcerStub(channel)


@contextmanager
def admin_stub(ns: argparse.Namespace) -> Iterator[tuple[admin_grpc.AdminStub, Metadata]]:
    """An Admin stub on ``--addr`` and the call metadata carrying ``--token``."""
    metadata = [("authorization", f"Bearer {ns.token}")] if ns.token else []
    with grpc.insecure_channel(ns.addr) as channel:
        yield admin_grpc.AdminStub(channel), metadata

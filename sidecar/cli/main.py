"""The ``sidecar`` command: its parser, and one way of reporting a failed call."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

import grpc

from sidecar import __version__
from sidecar.cli import contacts, decide, events, serve, subscriptions
from sidecar.cli.connection import token_given

EXIT_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sidecar`` command."""
    parser = argparse.ArgumentParser(
        prog="sidecar", description="Monthly Active Contacts enforcement sidecar."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_command(commands)
    decide.add_commands(commands)
    subscriptions.add_commands(commands)
    contacts.add_commands(commands)
    events.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    ns = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = ns.handler
    try:
        return handler(ns)
    except grpc.RpcError as exc:
        code = exc.code()
        details = exc.details() or ""
        if code is grpc.StatusCode.UNAVAILABLE and any(
            word in details.lower() for word in ("ssl", "tls", "handshake", "certificate")
        ):
            print(f"error: TLS with the sidecar at {ns.addr} failed: {details}", file=sys.stderr)
        elif code is grpc.StatusCode.UNAVAILABLE and "backend" not in details:
            print(
                f"error: cannot reach the sidecar at {ns.addr} (is it running? try `make run`)",
                file=sys.stderr,
            )
        elif code is grpc.StatusCode.UNAUTHENTICATED:
            refused = (
                "the admin token was refused" if token_given(ns) else "an admin token is needed"
            )
            print(f"error: UNAUTHENTICATED: {refused}", file=sys.stderr)
            print(
                "hint: pass --token, or set MAC_ADMIN_TOKEN or MAC_ADMIN_TOKEN_FILE",
                file=sys.stderr,
            )
        else:
            print(f"error: {code.name}: {exc.details()}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

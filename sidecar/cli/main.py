"""The ``sidecar`` command: its parser, and one way of reporting a failed call."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

import grpc

from sidecar import __version__
from sidecar.cli import (
    audit,
    contacts,
    decide,
    events,
    exits,
    serve,
    statements,
    subscriptions,
)
from sidecar.cli.connection import token_given


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sidecar`` command."""
    parser = argparse.ArgumentParser(
        prog="sidecar",
        description="Monthly Active Contacts enforcement sidecar.",
        epilog=exits.epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve.add_command(commands)
    decide.add_commands(commands)
    subscriptions.add_commands(commands)
    contacts.add_commands(commands)
    events.add_commands(commands)
    statements.add_commands(commands)
    audit.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (``exits.TABLE``)."""
    ns = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = ns.handler
    try:
        status = handler(ns)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    except grpc.RpcError as exc:
        return report_failed_call(ns, exc)
    except BrokenPipeError:
        # Nobody reads any more: stop quietly, and keep Python's exit flush from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return exits.BROKEN_PIPE
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except OSError as exc:  # a file named on the command line
        name = f" {exc.filename}" if exc.filename else ""
        print(f"error: cannot use{name}: {exc.strerror or exc}", file=sys.stderr)
        return exits.USAGE
    except ValueError as exc:  # the client's own refusal of a value it was given
        print(f"error: {exc}", file=sys.stderr)
        return exits.USAGE
    except Exception as exc:  # the one line a command says instead of a traceback
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exits.FAILED


def report_failed_call(ns: argparse.Namespace, exc: grpc.RpcError) -> int:
    """Say in one line (and a hint) why a call to the sidecar failed; return the exit status.
    A TLS handshake that fails is the command's TLS options, a usage error."""
    code = exc.code()
    details = exc.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE and any(
        word in details.lower() for word in ("ssl", "tls", "handshake", "certificate")
    ):
        print(f"error: TLS with the sidecar at {ns.addr} failed: {details}", file=sys.stderr)
        return exits.USAGE
    if code is grpc.StatusCode.UNAVAILABLE and "backend" not in details:
        print(
            f"error: cannot reach the sidecar at {ns.addr} (is it running? try `make run`)",
            file=sys.stderr,
        )
    elif code is grpc.StatusCode.UNAUTHENTICATED and details.endswith("send none"):
        print(f"error: UNAUTHENTICATED: {details}", file=sys.stderr)
        print("hint: leave out --token, MAC_ADMIN_TOKEN and MAC_ADMIN_TOKEN_FILE", file=sys.stderr)
    elif code is grpc.StatusCode.UNAUTHENTICATED:
        refused = "the admin token was refused" if token_given(ns) else "an admin token is needed"
        print(f"error: UNAUTHENTICATED: {refused}", file=sys.stderr)
        print("hint: pass --token, or set MAC_ADMIN_TOKEN or MAC_ADMIN_TOKEN_FILE", file=sys.stderr)
    else:
        print(f"error: {code.name}: {details}", file=sys.stderr)
    return exits.of_status(code)


if __name__ == "__main__":
    sys.exit(main())

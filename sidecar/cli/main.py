"""The ``sidecar`` command: ``serve`` runs the service; the others call a running one."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import grpc

from sidecar import __version__
from sidecar.cli import operators as cli_admin
from sidecar.domain.errors import ConfigError
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.settings import Settings, add_arguments

EXIT_DENIED = 1
EXIT_ERROR = 2


def _serve(ns: argparse.Namespace) -> int:
    from sidecar import logs
    from sidecar.server.app import run

    overrides = {k: v for k, v in vars(ns).items() if k in Settings.__dataclass_fields__}
    try:
        settings = Settings.from_env(os.environ, overrides)
        settings.secret_bytes()
    except ConfigError as exc:
        print(f"sidecar: configuration error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    logs.configure(settings.log_level, settings.log_format)
    if not os.environ.get("MAC_WORKER_OF"):
        logs.get_logger("sidecar").info("starting", version=__version__, **settings.public())
    try:
        if settings.workers > 1:
            from sidecar.server.workers import Supervisor

            return Supervisor(settings).run()
        _run_loop(run(settings))
    except ConfigError as exc:
        print(f"sidecar: {exc}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _run_loop(main: Any) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        import asyncio

        asyncio.run(main)
    else:
        uvloop.run(main)


_REASON_TEXT = {
    "ALREADY_ACTIVE": "already counted this period",
    "ADMITTED": "new contact, now counted",
    "WITHIN_LIMIT": "new contact; Activate would count it",
    "LIMIT_REACHED": "new contact refused: the limit is reached",
    "EXEMPT": "exempt contact, never counted",
    "TRIAL_STARTED": "new contact, admitted by starting a fair-usage trial",
    "BACKEND_UNAVAILABLE": "Redis is unreachable; the failure mode decided",
}


def format_decision(decision: pb.Decision) -> str:
    """A decision as a few readable lines."""
    reason = pb.Reason.Name(decision.reason)
    verdict = "allowed" if decision.allowed else "DENIED"
    lines = [f"{verdict}: {reason} ({_REASON_TEXT.get(reason, '')})"]
    if decision.shadow_denied:
        lines.append("  shadow mode: this contact would have been denied")
    if decision.identity_conflict:
        lines.append("  identity conflict: the identifiers belong to two identities")
    lines.append(f"  contact key  {decision.contact_key}")
    if decision.HasField("usage"):
        u = decision.usage
        lines.append(
            f"  usage        {u.active} of {u.limit} active, {u.remaining} remaining  "
            f"{cli_admin.bar(u.active, u.limit)}"
        )
        lines.append(
            f"  period       {u.period}  "
            f"({cli_admin.when(u.period_start)} to {cli_admin.when(u.period_end)})"
        )
        lines.append(f"  plan         {u.plan}")
        if u.HasField("trial_ends_at"):
            lines.append(f"  trial ends   {cli_admin.when(u.trial_ends_at)}")
    return "\n".join(lines)


def _contact(ns: argparse.Namespace) -> pb.Contact:
    return pb.Contact(
        id=ns.id, email=ns.email, phone=ns.phone, channel=ns.channel, visitor_id=ns.visitor_id
    )


def _call(ns: argparse.Namespace, invoke: Callable[[pb_grpc.EnforcerStub], Any]) -> Any:
    with grpc.insecure_channel(ns.addr) as channel:
        return invoke(pb_grpc.EnforcerStub(channel))


def _decide(method: str) -> Callable[[argparse.Namespace], int]:
    def command(ns: argparse.Namespace) -> int:
        request_type = pb.CheckRequest if method == "Check" else pb.ActivateRequest
        request = request_type(workspace_id=ns.workspace, contact=_contact(ns))
        decision = _call(ns, lambda stub: getattr(stub, method)(request, timeout=ns.timeout))
        if ns.json:
            print(cli_admin.to_json(decision))
        else:
            print(format_decision(decision))
        return 0 if decision.allowed else EXIT_DENIED

    return command


def _client_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--addr",
        default=cli_admin.enforcer_addr(),
        help="the sidecar's host:port [MAC_GRPC_ADDR; default %(default)s]",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def _contact_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workspace", help="workspace id")
    parser.add_argument("--id", default="", help="the platform's contact id")
    parser.add_argument("--email", default="", help="email address")
    parser.add_argument("--phone", default="", help="phone number")
    parser.add_argument("--channel", default="", help="channel of an unidentified visitor")
    parser.add_argument("--visitor-id", default="", help="the channel's visitor id")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``sidecar`` command."""
    parser = argparse.ArgumentParser(
        prog="sidecar", description="Monthly Active Contacts enforcement sidecar."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the gRPC service")
    add_arguments(serve)
    serve.set_defaults(handler=_serve)

    for name, method, text in (
        ("check", "Check", "what Activate would answer for a contact, changing nothing"),
        ("activate", "Activate", "admit and count a contact (exit 1 when denied)"),
    ):
        sub = commands.add_parser(name, help=text, description=text)
        _contact_arguments(sub)
        _client_arguments(sub)
        sub.set_defaults(handler=_decide(method))
    cli_admin.add_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    ns = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = ns.handler
    try:
        return handler(ns)
    except grpc.RpcError as exc:
        code = exc.code()
        if code is grpc.StatusCode.UNAVAILABLE and "backend" not in (exc.details() or ""):
            print(
                f"error: cannot reach the sidecar at {ns.addr} (is it running? try `make run`)",
                file=sys.stderr,
            )
        else:
            print(f"error: {code.name}: {exc.details()}", file=sys.stderr)
            if code is grpc.StatusCode.UNAUTHENTICATED:
                print("hint: pass --token or set MAC_ADMIN_TOKEN", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""``sidecar check`` and ``sidecar activate``: one decision from a running sidecar."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from sidecar.cli.connection import client, enforcer_options
from sidecar.cli.formatting import decision_text, to_json
from sidecar.gen.mac.v1 import enforcer_pb2 as pb

EXIT_DENIED = 1


def _contact(ns: argparse.Namespace) -> pb.Contact:
    return pb.Contact(
        id=ns.id, email=ns.email, phone=ns.phone, channel=ns.channel, visitor_id=ns.visitor_id
    )


def _command(method: str) -> Callable[[argparse.Namespace], int]:
    def command(ns: argparse.Namespace) -> int:
        with client(ns) as mac:
            call = mac.check if method == "Check" else mac.activate
            decision = call(ns.workspace, _contact(ns))
        assert decision.message is not None  # the CLI raises when the sidecar is unreachable
        print(to_json(decision.message) if ns.json else decision_text(decision.message))
        return 0 if decision.allowed else EXIT_DENIED

    return command


def _contact_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("workspace", help="workspace id")
    parser.add_argument("--id", default="", help="the platform's contact id")
    parser.add_argument("--email", default="", help="email address")
    parser.add_argument("--phone", default="", help="phone number")
    parser.add_argument("--channel", default="", help="channel of an unidentified visitor")
    parser.add_argument("--visitor-id", default="", help="the channel's visitor id")


def add_commands(commands: Any) -> None:
    """Add ``check`` and ``activate`` to the ``sidecar`` subcommands."""
    for name, method, text in (
        ("check", "Check", "what Activate would answer for a contact, changing nothing"),
        ("activate", "Activate", "admit and count a contact (exit 1 when denied)"),
    ):
        parser = commands.add_parser(name, help=text, description=text)
        _contact_arguments(parser)
        enforcer_options(parser)
        parser.set_defaults(handler=_command(method))

"""``sidecar events tail``: recorded notification events, then live ones."""

from __future__ import annotations

import argparse
from typing import Any

from sidecar.cli.connection import admin_options, client, seconds
from sidecar.cli.formatting import to_json, when
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb


def events_tail(ns: argparse.Namespace) -> int:
    with client(ns) as mac:
        for event in mac.watch_events(ns.workspace or "", ns.after, ns.seconds):
            if ns.json:
                print(to_json(event, indent=None), flush=True)
                continue
            kind = admin_pb.Event.Type.Name(event.type).removeprefix("TYPE_")
            detail = f" {event.threshold_percent}%" if event.threshold_percent else ""
            print(
                f"{when(event.at)}  {event.workspace_id}  {kind}{detail}  {event.period}  "
                f"{event.active:,} of {event.limit:,}  id={event.id}",
                flush=True,
            )
    return 0


def add_commands(commands: Any) -> None:
    """Add ``events`` to the ``sidecar`` subcommands."""
    events = commands.add_parser("events", help="notification events")
    eactions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = eactions.add_parser("tail", help="print recorded events, then follow new ones")
    tail.add_argument("workspace", nargs="?", default="", help="one workspace (default: all)")
    tail.add_argument("--after", default="", help="resume after this event id")
    tail.add_argument(
        "--seconds", type=seconds, default=None, help="stop after this long (default: follow)"
    )
    admin_options(tail)
    tail.set_defaults(handler=events_tail)

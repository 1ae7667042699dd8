"""``sidecar statements``: the final statements of a closed month, for invoicing."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

from sidecar.cli import exits
from sidecar.cli.connection import admin_options, client, count
from sidecar.cli.formatting import as_dict
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb

COLUMNS = (
    "workspace_id",
    "period",
    "period_start",
    "period_end",
    "active",
    "limit",
    "plan",
    "packs",
    "overage",
    "trial_plan",
    "trial_ends_at",
    "closed_at",
)


def _row(statement: admin_pb.Statement) -> list[Any]:
    data = as_dict(statement)
    return [data.get(column, "") for column in COLUMNS]


def statements_list(ns: argparse.Namespace) -> int:
    out: TextIO = open(ns.output, "w", newline="") if ns.output else sys.stdout  # noqa: SIM115
    show_progress = sys.stderr.isatty()
    seen: set[tuple[str, int]] = set()
    writer = csv.writer(out) if ns.format == "csv" else None
    try:
        if writer is not None:
            writer.writerow(COLUMNS)
        else:
            out.write("[")
        token, pages = "", 0
        with client(ns) as mac:
            while True:
                page = mac.list_statements(ns.period, token, ns.page_size)
                pages += 1
                for statement in page.statements:
                    # a workspace added during the listing may come twice
                    key = (statement.workspace_id, statement.period_start.seconds)
                    if key in seen:
                        continue
                    seen.add(key)
                    if writer is not None:
                        writer.writerow(_row(statement))
                    else:
                        out.write(",\n" if len(seen) > 1 else "\n")
                        out.write(json.dumps(as_dict(statement), ensure_ascii=False))
                if show_progress:
                    print(
                        f"\rlisting the statements of {ns.period}: {len(seen):,} ({pages:,} pages)",
                        end="",
                        file=sys.stderr,
                    )
                token = page.next_page_token
                if not token:
                    break
        if writer is None:
            out.write("\n]\n" if seen else "]\n")
    finally:
        if out is not sys.stdout:
            out.close()
    if show_progress:
        print(file=sys.stderr)
    target = f" to {ns.output}" if ns.output else ""
    print(f"wrote {len(seen):,} statements of {ns.period}{target}", file=sys.stderr)
    return exits.OK


def add_commands(commands: Any) -> None:
    """Add ``statements`` to the ``sidecar`` subcommands."""
    statements = commands.add_parser(
        "statements",
        help="write the final statements of a closed month (one per workspace and period)",
    )
    statements.add_argument("--period", required=True, help="the month, YYYY-MM")
    statements.add_argument(
        "--format", choices=("csv", "json"), default="csv", help="csv (default) or json"
    )
    statements.add_argument("--output", "-o", default="", help="a file instead of stdout")
    statements.add_argument(
        "--page-size", type=count, default=500, help="statements per call (1-1000)"
    )
    admin_options(statements)
    statements.set_defaults(handler=statements_list)

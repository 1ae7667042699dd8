"""``sidecar audit``: a workspace's audit trail, newest first: who changed what, and when."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from sidecar.cli import exits
from sidecar.cli.connection import admin_options, client, count
from sidecar.cli.formatting import as_dict
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb

_AGO = re.compile(r"([0-9]{1,6})([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
PAGE_MAX = 1000


def since(text: str) -> datetime:
    """``--since``'s value: a time ago (``7d``, ``24h``, ``30m``) or an instant (ISO 8601,
    ``2026-11-01T00:00:00Z``; a date or a time without an offset is UTC)."""
    ago = _AGO.fullmatch(text.strip())
    if ago is not None:
        return datetime.now(UTC) - timedelta(**{_UNITS[ago[2]]: int(ago[1])})
    try:
        instant = datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: give a time ago (7d, 24h, 30m) or an instant (2026-11-01T00:00:00Z)"
        ) from None
    return instant if instant.tzinfo is not None else instant.replace(tzinfo=UTC)


def _value(text: str) -> str:
    return text if text else "(none)"


def change_text(method: str, change: admin_pb.AuditChange) -> str:
    """``field: before -> after``; a count (a change of Merge, SetExempt, Forget) as
    ``field: n``."""
    if not change.before and method != "SetSubscription":
        return f"{change.field}: {change.after}"
    return f"{change.field}: {_value(change.before)} -> {_value(change.after)}"


def _row(record: admin_pb.AuditRecord) -> list[str]:
    at = datetime.fromtimestamp(record.at.seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    changes = "; ".join(change_text(record.method, c) for c in record.changes)
    return [at, record.admin, record.method, "yes" if record.changed else "no", changes or "-"]


def table(records: list[admin_pb.AuditRecord]) -> str:
    """The records as a table: time, admin, method, changed, changes."""
    rows = [["TIME", "ADMIN", "METHOD", "CHANGED", "CHANGES"], *(_row(r) for r in records)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "  ".join([*(row[i].ljust(widths[i]) for i in range(4)), row[4]]) for row in rows
    )


def audit_list(ns: argparse.Namespace) -> int:
    limit: int | None = ns.limit
    page_size = min(limit, PAGE_MAX) if limit else 0
    found: list[admin_pb.AuditRecord] = []
    with client(ns) as mac:
        for record in mac.audit_records(ns.workspace, ns.since, page_size):
            found.append(record)
            if limit is not None and len(found) >= limit:
                break
    if ns.json:  # an array, one record a line
        lines = [json.dumps(as_dict(r), ensure_ascii=False) for r in found]
        print("[" + ",".join(f"\n{line}" for line in lines) + ("\n]" if lines else "]"))
    elif found:
        print(table(found))
    else:
        print(f"no audit records of {ns.workspace}", file=sys.stderr)
    return exits.OK


def add_commands(commands: Any) -> None:
    """Add ``audit`` to the ``sidecar`` subcommands."""
    audit = commands.add_parser(
        "audit",
        help="list a workspace's audit trail, newest first: who changed what, and when",
    )
    audit.add_argument("workspace", help="the workspace id")
    audit.add_argument(
        "--since",
        type=since,
        default=None,
        help="only records from then on: a time ago (7d, 24h, 30m) or an instant "
        "(2026-11-01T00:00:00Z); default: every record kept (MAC_AUDIT_RETENTION_DAYS)",
    )
    audit.add_argument("--limit", type=count, default=None, help="at most this many records")
    admin_options(audit)
    audit.set_defaults(handler=audit_list)

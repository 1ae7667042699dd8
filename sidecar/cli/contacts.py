"""``sidecar contacts export|key|merge|exempt|forget``: the contacts counted in a period, and who is
who."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any, TextIO

from sidecar.cli import exits
from sidecar.cli.connection import admin_options, client, count, enforcer_options
from sidecar.cli.formatting import print_message, to_json
from sidecar.gen.mac.v1 import enforcer_pb2 as enforcer_pb


def contacts_export(ns: argparse.Namespace) -> int:
    if ns.json:  # JSON of an export is one object per line
        if ns.format == "csv":
            print("error: --json writes JSON lines, not --format csv", file=sys.stderr)
            return exits.USAGE
        ns.format = "jsonl"
    ns.format = ns.format or "csv"
    out: TextIO = open(ns.output, "w", newline="") if ns.output else sys.stdout  # noqa: SIM115
    show_progress = sys.stderr.isatty()
    seen: set[str] = set()
    try:
        writer = csv.writer(out) if ns.format == "csv" else None
        if writer is not None:
            writer.writerow(["workspace_id", "period", "contact_key"])
        token = ""
        with client(ns) as mac:
            while True:
                page = mac.list_active_contacts(ns.workspace, ns.period, token, ns.page_size)
                for key in page.contact_keys:
                    if key in seen:  # SSCAN may return a key twice; an export must not
                        continue
                    seen.add(key)
                    if writer is not None:
                        writer.writerow([ns.workspace, page.period, key])
                    else:
                        line = {
                            "workspace_id": ns.workspace,
                            "period": page.period,
                            "contact_key": key,
                        }
                        out.write(json.dumps(line))
                        out.write("\n")
                if show_progress and page.total:
                    share = min(len(seen) / page.total, 1.0)
                    print(
                        f"\rexporting {len(seen):,} of {page.total:,} contacts ({share:.0%})",
                        end="",
                        file=sys.stderr,
                    )
                token = page.next_page_token
                if not token:
                    break
    finally:
        if out is not sys.stdout:
            out.close()
    if show_progress:
        print(file=sys.stderr)
    target = f" to {ns.output}" if ns.output else ""
    print(f"exported {len(seen):,} contacts of {ns.workspace}{target}", file=sys.stderr)
    return 0


_CONTACT_FIELDS = ("id", "email", "phone", "channel", "visitor_id")


def parse_contact(text: str) -> enforcer_pb.Contact:
    """``email=ana@example.com,phone=+4915112345678`` as a Contact.

    :raise argparse.ArgumentTypeError: naming what is wrong.
    """
    fields: dict[str, str] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip().replace("-", "_")
        if not sep or name not in _CONTACT_FIELDS or not value.strip():
            raise argparse.ArgumentTypeError(
                f"{text!r}: expected FIELD=VALUE[,FIELD=VALUE] with FIELD one of "
                + ", ".join(_CONTACT_FIELDS)
            )
        fields[name] = value.strip()
    return enforcer_pb.Contact(**fields)


def contacts_key(ns: argparse.Namespace) -> int:
    with client(ns) as mac:
        decision = mac.check(ns.workspace, ns.contact)
    if ns.json:
        assert decision.message is not None  # the CLI raises when the sidecar is unreachable
        print(to_json(decision.message))
        return 0
    state = {
        "REASON_ALREADY_ACTIVE": "counted this period",
        "REASON_EXEMPT": "exempt",
    }.get(decision.reason, "not counted this period")
    print(f"{decision.contact_key}  ({state})")
    if decision.identity_conflict:
        print("identity conflict: these identifiers belong to two identities", file=sys.stderr)
    return 0


def contacts_merge(ns: argparse.Namespace) -> int:
    with client(ns) as mac:
        reply = mac.merge(ns.workspace, ns.sources, ns.into)
    text = (
        f"merged {reply.folded:,} identit{'y' if reply.folded == 1 else 'ies'} into "
        f"{reply.contact_key}; {reply.uncounted:,} uncounted, "
        f"{reply.usage.active:,} of {reply.usage.limit:,} active in {reply.usage.period}"
    )
    print_message(ns, reply, text)
    return 0


def contacts_exempt(ns: argparse.Namespace) -> int:
    with client(ns) as mac:
        reply = mac.set_exempt(ns.workspace, ns.contacts, exempt=not ns.undo)
    verb = "countable again" if ns.undo else "exempt"
    lines = [f"{key}  {verb}" for key in reply.contact_keys]
    print_message(ns, reply, "\n".join(lines))
    return 0


def contacts_forget(ns: argparse.Namespace) -> int:
    with client(ns) as mac:
        reply = mac.forget(ns.workspace, ns.contact)
    if reply.forgotten:
        text = (
            f"forgot {reply.identifiers_removed:,} identifier"
            f"{'' if reply.identifiers_removed == 1 else 's'}; counted in {reply.periods:,} "
            f"period{'' if reply.periods == 1 else 's'}, where the counts stay"
        )
    else:
        text = "nothing was known of this contact (or it was forgotten before)"
    print_message(ns, reply, text)
    return 0


def add_commands(commands: Any) -> None:
    """Add ``contacts`` to the ``sidecar`` subcommands."""
    contacts = commands.add_parser("contacts", help="the contacts counted in a period")
    cactions = contacts.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = cactions.add_parser("export", help="write a period's counted contact keys")
    export.add_argument("workspace")
    export.add_argument("--period", default="", help="YYYY-MM; default the current period")
    export.add_argument(
        "--format", choices=("csv", "jsonl"), default=None, help="csv (default) or jsonl"
    )
    export.add_argument("--output", "-o", default="", help="a file instead of stdout")
    export.add_argument("--page-size", type=count, default=1000, help="keys per call")
    admin_options(export)
    export.set_defaults(handler=contacts_export)

    contact_help = "FIELD=VALUE[,FIELD=VALUE], e.g. email=ana@example.com,phone=+4915112345678"
    key = cactions.add_parser(
        "key", help="the key a contact is counted under, to find it in an export"
    )
    key.add_argument("workspace")
    key.add_argument("contact", type=parse_contact, help=contact_help)
    enforcer_options(key, timeout=10.0)  # a lookup is a Check, served by the Enforcer
    key.set_defaults(handler=contacts_key)

    merge = cactions.add_parser("merge", help="fold identities into one")
    merge.add_argument("workspace")
    merge.add_argument(
        "--into", type=parse_contact, required=True, help="the survivor: " + contact_help
    )
    merge.add_argument(
        "--from",
        dest="sources",
        type=parse_contact,
        action="append",
        required=True,
        help="an identity to fold (repeat for more): " + contact_help,
    )
    admin_options(merge)
    merge.set_defaults(handler=contacts_merge)

    exempt = cactions.add_parser("exempt", help="exempt contacts: allowed, never counted")
    exempt.add_argument("workspace")
    exempt.add_argument("contacts", type=parse_contact, nargs="+", help=contact_help)
    exempt.add_argument("--undo", action="store_true", help="make them countable again")
    admin_options(exempt)
    exempt.set_defaults(handler=contacts_exempt)

    forget = cactions.add_parser(
        "forget", help="erase a person: links, exemption, place in every period (counts stay)"
    )
    forget.add_argument("workspace")
    forget.add_argument("contact", type=parse_contact, help=contact_help)
    admin_options(forget)
    forget.set_defaults(handler=contacts_forget)

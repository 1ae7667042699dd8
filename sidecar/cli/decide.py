"""``sidecar check`` and ``sidecar activate``: one decision from a running sidecar; and
``sidecar check-batch``: would a campaign fit."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sidecar.cli import exits
from sidecar.cli.connection import client, enforcer_options
from sidecar.cli.contacts import parse_contact
from sidecar.cli.formatting import bar, decision_text, to_json
from sidecar.gen.mac.v1 import enforcer_pb2 as pb


def _contact(ns: argparse.Namespace) -> pb.Contact:
    return pb.Contact(
        id=ns.id, email=ns.email, phone=ns.phone, channel=ns.channel, visitor_id=ns.visitor_id
    )


def occurred_at(text: str) -> datetime:
    """``--occurred-at``: an ISO 8601 time, UTC when it names no offset.

    :raise argparse.ArgumentTypeError: when it is not one.
    """
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time, e.g. 2026-11-30T23:59:58+01:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _command(method: str) -> Callable[[argparse.Namespace], int]:
    def command(ns: argparse.Namespace) -> int:
        with client(ns) as mac:
            call = mac.check if method == "Check" else mac.activate
            decision = call(ns.workspace, _contact(ns), occurred_at=ns.occurred_at)
        assert decision.message is not None  # the CLI raises when the sidecar is unreachable
        print(to_json(decision.message) if ns.json else decision_text(decision.message))
        return exits.OK if decision.allowed else exits.DENIED

    return command


def _read_contacts(ns: argparse.Namespace) -> list[pb.Contact] | None:
    found = list(ns.contacts)
    if ns.file:
        try:
            with open(ns.file) if ns.file != "-" else sys.stdin as lines:
                for number, line in enumerate(lines, 1):
                    if line.strip() and not line.lstrip().startswith("#"):
                        try:
                            found.append(parse_contact(line.strip()))
                        except argparse.ArgumentTypeError as exc:
                            print(f"error: {ns.file}:{number}: {exc}", file=sys.stderr)
                            return None
        except OSError as exc:
            print(f"error: cannot read {ns.file}: {exc.strerror}", file=sys.stderr)
            return None
    if not found:
        print("error: no contacts: give them as arguments or with --file", file=sys.stderr)
        return None
    return found


def check_batch(ns: argparse.Namespace) -> int:
    contacts = _read_contacts(ns)
    if contacts is None:
        return exits.USAGE
    with client(ns) as mac:
        reply = mac.check_batch(ns.workspace, contacts)
    if ns.json:
        print(to_json(reply))
    else:
        print("\n".join(batch_summary(len(contacts), reply)))
    return exits.OK if reply.fits else exits.DENIED


def batch_summary(total: int, reply: pb.CheckBatchResponse) -> list[str]:
    """What ``check-batch`` prints: the verdict, how many would be counted (and whether that
    starts a trial), already active, not counted, denied, and the usage before and after."""
    trial_at = next(
        (n for n, d in enumerate(reply.decisions, 1) if d.reason == pb.REASON_TRIAL_STARTED), 0
    )
    if not reply.fits:
        verdict = f"does NOT fit: {reply.denied:,} would be denied"
    else:
        verdict = "fits, by starting a trial" if trial_at else "fits"
    lines = [
        f"{total:,} contacts: {verdict}",
        f"  would count      {reply.admitted:,}"
        + (f"  and {reply.overage:,} in overage" if reply.overage else ""),
        f"  start a trial    {f'yes, at contact {trial_at:,}' if trial_at else 'no'}",
        f"  already active   {reply.already_active:,}",
        f"  not counted      {reply.uncounted:,}  (exempt, or shadow mode)",
        f"  denied           {reply.denied:,}",
    ]
    if reply.HasField("usage"):
        u = reply.usage
        after = u.active + reply.admitted + reply.overage
        if trial_at:
            shown = f"{after:,}, past the plan's {u.limit:,}: counted under the trial's limit"
        else:
            shown = f"{after:,} {bar(after, u.limit)}"
        lines.append(f"  usage now        {u.active:,} of {u.limit:,}; after it {shown}")
    return lines


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
        parser.add_argument(
            "--occurred-at",
            type=occurred_at,
            default=None,
            metavar="TIME",
            help="when the contact happened, ISO 8601 (UTC without an offset; default now): "
            "decided and counted in the period of that time",
        )
        enforcer_options(parser)
        parser.set_defaults(handler=_command(method))
    text = "what ActivateBatch would do for a campaign's contacts, changing nothing"
    batch = commands.add_parser(
        "check-batch",
        help=text + " (exit 1 when some would be denied)",
        description=text + ". Contacts as FIELD=VALUE[,FIELD=VALUE], e.g. "
        "email=ana@example.com,phone=+4915112345678; exit 1 when some would be denied.",
    )
    batch.add_argument("workspace", help="workspace id")
    batch.add_argument("contacts", type=parse_contact, nargs="*", help="contacts to check")
    batch.add_argument("--file", "-f", default="", help="one contact per line ('-': stdin)")
    enforcer_options(batch, timeout=30.0)
    batch.set_defaults(handler=check_batch)

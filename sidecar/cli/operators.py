"""The operators' commands of ``sidecar``: subscriptions, usage, contact export, events."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as enforcer_pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as enforcer_grpc
from sidecar.settings import DEFAULT_GRPC_ADDR


def enforcer_addr() -> str:
    """Where the CLI finds the Enforcer: ``MAC_GRPC_ADDR``, else the sidecar's default."""
    return os.environ.get("MAC_GRPC_ADDR", DEFAULT_GRPC_ADDR)


def when(ts: Any) -> str:
    """A protobuf Timestamp as ``2026-11-01 00:00 UTC``."""
    return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def bar(active: int, limit: int, width: int = 20) -> str:
    """A usage bar: ``[#####...............]  25%``."""
    share = 1.0 if limit <= 0 else min(active / limit, 1.0)
    filled = round(share * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {share:4.0%}"


def to_json(message: Message) -> str:
    """A message as indented JSON with every field shown."""
    return json_format.MessageToJson(message, always_print_fields_with_no_presence=True)


@contextmanager
def admin_stub(ns: argparse.Namespace) -> Iterator[tuple[Any, list[tuple[str, str]]]]:
    """An Admin stub on ``--addr`` and the call metadata carrying ``--token``."""
    metadata = [("authorization", f"Bearer {ns.token}")] if ns.token else []
    with grpc.insecure_channel(ns.addr) as channel:
        yield admin_grpc.AdminStub(channel), metadata


def _subscription_text(sub: admin_pb.Subscription) -> str:
    packs = f" ({sub.packs} MAC pack{'s' if sub.packs != 1 else ''})" if sub.packs else ""
    lines = [
        f"workspace     {sub.workspace_id}"
        + ("   (no subscription: default plan)" if sub.is_default else ""),
        f"plan          {sub.plan}{packs}",
        f"limit         {sub.effective_limit:,}"
        + (f"   custom base {sub.custom_limit:,}" if sub.custom_limit else ""),
        "trial         "
        + (
            f"{sub.trial_plan} at {sub.trial_limit:,} when the limit is hit (once a major release)"
            if sub.trial_plan
            else "none"
        ),
        f"time zone     {sub.timezone}",
        f"starts        {when(sub.starts_at) if sub.HasField('starts_at') else '-'}",
        f"platform      {sub.platform_version or '-'}",
        f"shadow mode   {'on (never denies)' if sub.shadow_mode else 'off'}",
    ]
    if sub.HasField("trial_ends_at"):
        lines.append(f"trial ends    {when(sub.trial_ends_at)}")
    return "\n".join(lines)


def _print_message(ns: argparse.Namespace, message: Message, text: str) -> None:
    print(to_json(message) if ns.json else text)


def subscription_set(ns: argparse.Namespace) -> int:
    starts_at = None
    if ns.starts_at:
        try:
            parsed = datetime.fromisoformat(ns.starts_at)
        except ValueError:
            print(f"error: --starts-at: {ns.starts_at!r} is not an ISO 8601 time", file=sys.stderr)
            return 2
        starts_at = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    request = admin_pb.SetSubscriptionRequest(
        workspace_id=ns.workspace,
        plan=ns.plan,
        packs=ns.packs,
        custom_limit=ns.custom_limit,
        timezone=ns.timezone,
        platform_version=ns.platform_version,
        shadow_mode=ns.shadow,
    )
    if starts_at is not None:
        request.starts_at.FromDatetime(starts_at)
    with admin_stub(ns) as (stub, metadata):
        sub = stub.SetSubscription(request, metadata=metadata, timeout=ns.timeout)
    _print_message(ns, sub, _subscription_text(sub))
    return 0


def subscription_get(ns: argparse.Namespace) -> int:
    with admin_stub(ns) as (stub, metadata):
        sub = stub.GetSubscription(
            admin_pb.GetSubscriptionRequest(workspace_id=ns.workspace),
            metadata=metadata,
            timeout=ns.timeout,
        )
    _print_message(ns, sub, _subscription_text(sub))
    return 0


def usage(ns: argparse.Namespace) -> int:
    with admin_stub(ns) as (stub, metadata):
        reply = stub.GetUsage(
            admin_pb.GetUsageRequest(workspace_id=ns.workspace, period=ns.period),
            metadata=metadata,
            timeout=ns.timeout,
        )
    u = reply.usage
    lines = [
        f"{ns.workspace}  {u.period}  ({when(u.period_start)} to {when(u.period_end)})"
        + (f"  plan {u.plan}" if u.plan else ""),
        f"{bar(u.active, u.limit)}  {u.active:,} of {u.limit:,} active, {u.remaining:,} remaining",
    ]
    if u.HasField("trial_ends_at"):
        lines.append(f"fair-usage trial until {when(u.trial_ends_at)}")
    if reply.history:
        lines += ["", "period      active      limit"]
        lines += [f"{p.period}  {p.active:>9,}  {p.limit:>9,}" for p in reply.history]
    _print_message(ns, reply, "\n".join(lines))
    return 0


def contacts_export(ns: argparse.Namespace) -> int:
    out: TextIO = open(ns.output, "w", newline="") if ns.output else sys.stdout  # noqa: SIM115
    show_progress = sys.stderr.isatty()
    seen: set[str] = set()
    try:
        writer = csv.writer(out) if ns.format == "csv" else None
        if writer is not None:
            writer.writerow(["workspace_id", "period", "contact_key"])
        token = ""
        with admin_stub(ns) as (stub, metadata):
            while True:
                page = stub.ListActiveContacts(
                    admin_pb.ListActiveContactsRequest(
                        workspace_id=ns.workspace,
                        period=ns.period,
                        page_token=token,
                        page_size=ns.page_size,
                    ),
                    metadata=metadata,
                    timeout=ns.timeout,
                )
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


def events_tail(ns: argparse.Namespace) -> int:
    request = admin_pb.WatchEventsRequest(workspace_id=ns.workspace or "", after_id=ns.after)
    with admin_stub(ns) as (stub, metadata):
        stream = stub.WatchEvents(request, metadata=metadata, timeout=ns.seconds)
        try:
            for event in stream:
                if ns.json:
                    print(json_format.MessageToJson(event, indent=None), flush=True)
                    continue
                kind = admin_pb.Event.Type.Name(event.type)
                detail = f" {event.threshold_percent}%" if event.threshold_percent else ""
                print(
                    f"{when(event.at)}  {event.workspace_id}  {kind}{detail}  {event.period}  "
                    f"{event.active:,} of {event.limit:,}  id={event.id}",
                    flush=True,
                )
        except grpc.RpcError as exc:
            if exc.code() is not grpc.StatusCode.DEADLINE_EXCEEDED:
                raise
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
    with grpc.insecure_channel(ns.addr) as channel:
        decision = enforcer_grpc.EnforcerStub(channel).Check(
            enforcer_pb.CheckRequest(workspace_id=ns.workspace, contact=ns.contact),
            timeout=ns.timeout,
        )
    if ns.json:
        print(to_json(decision))
        return 0
    state = {
        enforcer_pb.ALREADY_ACTIVE: "counted this period",
        enforcer_pb.EXEMPT: "exempt",
    }.get(decision.reason, "not counted this period")
    print(f"{decision.contact_key}  ({state})")
    if decision.identity_conflict:
        print("identity conflict: these identifiers belong to two identities", file=sys.stderr)
    return 0


def contacts_merge(ns: argparse.Namespace) -> int:
    with admin_stub(ns) as (stub, metadata):
        reply = stub.Merge(
            admin_pb.MergeRequest(workspace_id=ns.workspace, sources=ns.sources, target=ns.into),
            metadata=metadata,
            timeout=ns.timeout,
        )
    text = (
        f"merged {reply.folded} identit{'y' if reply.folded == 1 else 'ies'} into "
        f"{reply.contact_key}; {reply.uncounted} uncounted, "
        f"{reply.usage.active:,} of {reply.usage.limit:,} active in {reply.usage.period}"
    )
    _print_message(ns, reply, text)
    return 0


def contacts_exempt(ns: argparse.Namespace) -> int:
    with admin_stub(ns) as (stub, metadata):
        reply = stub.SetExempt(
            admin_pb.SetExemptRequest(
                workspace_id=ns.workspace, contacts=ns.contacts, exempt=not ns.undo
            ),
            metadata=metadata,
            timeout=ns.timeout,
        )
    verb = "countable again" if ns.undo else "exempt"
    lines = [f"{key}  {verb}" for key in reply.contact_keys]
    _print_message(ns, reply, "\n".join(lines))
    return 0


def _connection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--addr",
        default=os.environ.get("MAC_ADMIN_ADDR") or enforcer_addr(),
        help="the Admin service's host:port [MAC_ADMIN_ADDR, else MAC_GRPC_ADDR; "
        "default %(default)s]",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("MAC_ADMIN_TOKEN", ""),
        help="the admin token [MAC_ADMIN_TOKEN]",
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait per call")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def add_commands(commands: Any) -> None:
    """Add the operators' commands to the ``sidecar`` subcommands."""
    sub = commands.add_parser("subscription", help="set or show a workspace's subscription")
    actions = sub.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = actions.add_parser("set", help="replace a workspace's subscription")
    set_.add_argument("workspace")
    set_.add_argument("--plan", required=True, help="starter, pro, enterprise, ...")
    set_.add_argument("--packs", type=int, default=0, help="MAC packs of 3,000 contacts")
    set_.add_argument("--custom-limit", type=int, default=0, help="enterprise base limit")
    set_.add_argument("--timezone", default="UTC", help="IANA time zone of the billing month")
    set_.add_argument("--starts-at", default="", help="ISO 8601 start, e.g. 2026-11-18T09:00Z")
    set_.add_argument("--platform-version", default="", help="e.g. 7.3.0")
    set_.add_argument(
        "--shadow",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="shadow mode: count as usual, never deny",
    )
    _connection(set_)
    set_.set_defaults(handler=subscription_set)
    get = actions.add_parser("get", help="show a workspace's subscription")
    get.add_argument("workspace")
    _connection(get)
    get.set_defaults(handler=subscription_get)

    use = commands.add_parser("usage", help="a workspace's usage and history")
    use.add_argument("workspace")
    use.add_argument("--period", default="", help="YYYY-MM; default the current period")
    _connection(use)
    use.set_defaults(handler=usage)

    contacts = commands.add_parser("contacts", help="the contacts counted in a period")
    cactions = contacts.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = cactions.add_parser("export", help="write a period's counted contact keys")
    export.add_argument("workspace")
    export.add_argument("--period", default="", help="YYYY-MM; default the current period")
    export.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    export.add_argument("--output", "-o", default="", help="a file instead of stdout")
    export.add_argument("--page-size", type=int, default=1000, help="keys per call")
    _connection(export)
    export.set_defaults(handler=contacts_export)

    contact_help = "FIELD=VALUE[,FIELD=VALUE], e.g. email=ana@example.com,phone=+4915112345678"
    key = cactions.add_parser(
        "key", help="the key a contact is counted under, to find it in an export"
    )
    key.add_argument("workspace")
    key.add_argument("contact", type=parse_contact, help=contact_help)
    _connection(key)
    # a lookup is a Check, served by the Enforcer
    key.set_defaults(handler=contacts_key, addr=enforcer_addr())

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
    _connection(merge)
    merge.set_defaults(handler=contacts_merge)

    exempt = cactions.add_parser("exempt", help="exempt contacts: allowed, never counted")
    exempt.add_argument("workspace")
    exempt.add_argument("contacts", type=parse_contact, nargs="+", help=contact_help)
    exempt.add_argument("--undo", action="store_true", help="make them countable again")
    _connection(exempt)
    exempt.set_defaults(handler=contacts_exempt)

    events = commands.add_parser("events", help="notification events")
    eactions = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    tail = eactions.add_parser("tail", help="print recorded events, then follow new ones")
    tail.add_argument("workspace", nargs="?", default="", help="one workspace (default: all)")
    tail.add_argument("--after", default="", help="resume after this event id")
    tail.add_argument(
        "--seconds", type=float, default=None, help="stop after this long (default: follow)"
    )
    _connection(tail)
    tail.set_defaults(handler=events_tail)

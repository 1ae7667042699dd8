"""``sidecar subscription set|get`` and ``sidecar usage``."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from typing import Any

import grpc

from sidecar.cli import exits
from sidecar.cli.connection import admin_options, client
from sidecar.cli.formatting import (
    bar,
    breakdown_text,
    flood_guard_text,
    print_message,
    subscription_text,
    when,
)

# --clear takes these: every field but the plan, by its flag's name
_CLEARABLE = {
    "packs": "packs",
    "custom-limit": "custom_limit",
    "timezone": "timezone",
    "starts-at": "starts_at",
    "platform-version": "platform_version",
    "shadow": "shadow_mode",
    "default-region": "default_region",
    "thresholds": "thresholds",
    "overage-percent": "overage_percent",
    "flood-guard": "flood_guard",
}


def _thresholds(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not percentages like 50,80,100") from None


def _flood_guard(text: str) -> tuple[int, str]:
    rate, _, action = text.partition("/")
    if not rate.strip().isdigit() or action.strip().upper() not in ("FLAG", "HOLD"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not RATE/ACTION like 100/hold or 500/flag"
        ) from None
    return int(rate), action.strip().upper()


def flood_text(reply: Any) -> list[str]:
    """The flood guard and the last flood of a ``GetUsageResponse``."""
    if not reply.HasField("flood_guard"):
        return []
    lines = [f"flood guard {flood_guard_text(reply.flood_guard)}"]
    if reply.HasField("last_flood_at"):
        lines.append(f"last flood  {when(reply.last_flood_at)}")
    return lines


def subscription_set(ns: argparse.Namespace) -> int:
    starts_at = None
    if ns.starts_at is not None:
        try:
            parsed = datetime.fromisoformat(ns.starts_at)
        except ValueError:
            print(f"error: --starts-at: {ns.starts_at!r} is not an ISO 8601 time", file=sys.stderr)
            return exits.USAGE
        starts_at = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    fields = {
        "plan": ns.plan,
        "packs": ns.packs,
        "custom_limit": ns.custom_limit,
        "timezone": ns.timezone,
        "platform_version": ns.platform_version,
        "shadow_mode": ns.shadow,
        "default_region": ns.default_region,
        "starts_at": starts_at,
        "thresholds": ns.thresholds,
        "overage_percent": ns.overage_percent,
        "flood_guard": ns.flood_guard,
    }
    clear = [_CLEARABLE[name] for name in ns.clear]
    both = sorted(name for name in clear if fields[name] is not None)
    if both:
        print(f"error: {', '.join(both)} is both set and cleared", file=sys.stderr)
        return exits.USAGE
    if all(v is None for v in fields.values()) and not clear:
        print("error: nothing to change: give a field to set or --clear one", file=sys.stderr)
        return exits.USAGE
    with client(ns) as mac:
        try:
            sub = mac.set_subscription(ns.workspace, clear=clear, **fields)
        except grpc.RpcError as exc:
            if ns.plan is None and exc.code() is grpc.StatusCode.FAILED_PRECONDITION:
                print(f"error: FAILED_PRECONDITION: {exc.details()}", file=sys.stderr)
                print(
                    f"hint: name the plan with --plan, e.g. sidecar subscription set "
                    f"{ns.workspace} --plan starter",
                    file=sys.stderr,
                )
                return exits.USAGE
            raise
    print_message(ns, sub, subscription_text(sub))
    return 0


def subscription_get(ns: argparse.Namespace) -> int:
    with client(ns) as mac:
        sub = mac.get_subscription(ns.workspace)
    print_message(ns, sub, subscription_text(sub))
    return 0


def usage(ns: argparse.Namespace) -> int:
    with client(ns) as mac:
        reply = mac.get_usage(ns.workspace, ns.period)
    u = reply.usage
    lines = [
        f"{ns.workspace}  {u.period}  ({when(u.period_start)} to {when(u.period_end)})"
        + (f"  plan {u.plan}" if u.plan else ""),
        f"{bar(u.active, u.limit)}  {u.active:,} of {u.limit:,} active, {u.remaining:,} remaining"
        if reply.recorded
        else f"no contacts counted in {u.period}",
    ]
    if u.overage:
        lines.append(f"overage     {u.overage:,} admitted beyond the limit")
    if u.HasField("trial_ends_at"):
        lines.append(f"fair-usage trial until {when(u.trial_ends_at)}")
    lines += flood_text(reply)
    lines += breakdown_text(reply)
    if reply.history:
        lines += ["", "period      active      limit"]
        lines += [f"{p.period}  {p.active:>9,}  {p.limit:>9,}" for p in reply.history]
    print_message(ns, reply, "\n".join(lines))
    return 0


def add_commands(commands: Any) -> None:
    """Add ``subscription`` and ``usage`` to the ``sidecar`` subcommands."""
    sub = commands.add_parser("subscription", help="set or show a workspace's subscription")
    actions = sub.add_subparsers(dest="action", required=True, metavar="ACTION")
    set_ = actions.add_parser(
        "set",
        help="change a workspace's subscription",
        description="Change the fields given and keep the rest (the first time, --plan is "
        "needed); --clear FIELD sets a field back to its default.",
    )
    set_.add_argument("workspace")
    set_.add_argument("--plan", help="starter, pro, enterprise, ...")
    set_.add_argument("--packs", type=int, help="MAC packs of 3,000 contacts")
    set_.add_argument("--custom-limit", type=int, help="enterprise base limit")
    set_.add_argument("--timezone", help="IANA time zone of the billing month (default UTC)")
    set_.add_argument("--starts-at", help="ISO 8601 start, e.g. 2026-11-18T09:00Z")
    set_.add_argument("--platform-version", help="e.g. 7.3.0")
    set_.add_argument(
        "--default-region", help="ISO 3166 region national phone numbers are read in, e.g. DE"
    )
    set_.add_argument(
        "--shadow",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="shadow mode: count as usual, never deny",
    )
    set_.add_argument(
        "--thresholds",
        type=_thresholds,
        help="usage percentages that record an event, e.g. 50,80,100 (default: the service's)",
    )
    set_.add_argument(
        "--overage-percent",
        type=int,
        help="admit new contacts beyond the limit up to this percent of it, billed as overage "
        "(0 to 100; default 0: deny at the limit)",
    )
    set_.add_argument(
        "--flood-guard",
        type=_flood_guard,
        metavar="RATE/ACTION",
        help="past RATE new contacts in a sliding minute (1 to 1,000,000), flag them (admit, "
        "record FLOOD_DETECTED) or hold them (deny with RATE_LIMITED), e.g. 100/hold",
    )
    set_.add_argument(
        "--clear",
        action="append",
        default=[],
        choices=sorted(_CLEARABLE),
        metavar="FIELD",
        help=f"set a field back to its default ({', '.join(_CLEARABLE)}); repeatable",
    )
    admin_options(set_)
    set_.set_defaults(handler=subscription_set)
    get = actions.add_parser("get", help="show a workspace's subscription")
    get.add_argument("workspace")
    admin_options(get)
    get.set_defaults(handler=subscription_get)

    use = commands.add_parser("usage", help="a workspace's usage and history")
    use.add_argument("workspace")
    use.add_argument("--period", default="", help="YYYY-MM; default the current period")
    admin_options(use)
    use.set_defaults(handler=usage)

"""How the CLI prints: times, usage bars, decisions, subscriptions, JSON."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb

REASON_TEXT = {
    "ALREADY_ACTIVE": "already counted this period",
    "ADMITTED": "new contact, now counted",
    "WITHIN_LIMIT": "new contact; Activate would count it",
    "LIMIT_REACHED": "new contact refused: the limit is reached",
    "EXEMPT": "exempt contact, never counted",
    "TRIAL_STARTED": "new contact, admitted by starting a fair-usage trial",
    "BACKEND_UNAVAILABLE": "Redis is unreachable; the failure mode decided",
}


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


def print_message(ns: argparse.Namespace, message: Message, text: str) -> None:
    """Print ``message`` as JSON with ``--json``, else ``text``."""
    print(to_json(message) if ns.json else text)


def decision_text(decision: pb.Decision) -> str:
    """A decision as a few readable lines."""
    reason = pb.Reason.Name(decision.reason).removeprefix("REASON_")
    verdict = "allowed" if decision.allowed else "DENIED"
    lines = [f"{verdict}: {reason} ({REASON_TEXT.get(reason, '')})"]
    if decision.shadow_denied:
        lines.append("  shadow mode: this contact would have been denied")
    if decision.identity_conflict:
        lines.append("  identity conflict: the identifiers belong to two identities")
    lines.append(f"  contact key  {decision.contact_key}")
    if decision.HasField("usage"):
        u = decision.usage
        lines.append(
            f"  usage        {u.active} of {u.limit} active, {u.remaining} remaining  "
            f"{bar(u.active, u.limit)}"
        )
        lines.append(f"  period       {u.period}  ({when(u.period_start)} to {when(u.period_end)})")
        lines.append(f"  plan         {u.plan}")
        if u.HasField("trial_ends_at"):
            lines.append(f"  trial ends   {when(u.trial_ends_at)}")
    return "\n".join(lines)


def subscription_text(sub: admin_pb.Subscription) -> str:
    """A subscription as an aligned block."""
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
        f"phone region  {sub.default_region or '-  (phone numbers need a country code)'}",
        f"shadow mode   {'on (never denies)' if sub.shadow_mode else 'off'}",
        "thresholds    "
        + ", ".join(f"{t}%" for t in sub.thresholds)
        + ("   (the service's)" if sub.default_thresholds else ""),
    ]
    if sub.HasField("trial_ends_at"):
        lines.append(f"trial ends    {when(sub.trial_ends_at)}")
    return "\n".join(lines)

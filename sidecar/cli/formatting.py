"""How the CLI prints: times, usage bars, decisions, subscriptions, JSON."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
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
    "RATE_LIMITED": "new contact refused: the flood guard's rate is reached this minute",
}


def when(ts: Any) -> str:
    """A protobuf Timestamp as ``2026-11-01 00:00 UTC``."""
    return datetime.fromtimestamp(ts.seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def bar(active: int, limit: int, width: int = 20) -> str:
    """A usage bar: ``[#####...............]  25%``."""
    share = 1.0 if limit <= 0 else min(active / limit, 1.0)
    filled = round(share * width)
    return "[" + "#" * filled + "." * (width - filled) + f"] {share:4.0%}"


_INT64 = {
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT64,
    FieldDescriptor.TYPE_FIXED64,
    FieldDescriptor.TYPE_SFIXED64,
}


def _numbers(message: Message, data: dict[str, Any]) -> dict[str, Any]:
    # proto3 JSON writes 64-bit integers as strings; a shell's jq wants numbers
    for field in message.DESCRIPTOR.fields:
        if field.name not in data:
            continue
        value = getattr(message, field.name)
        repeated = field.is_repeated
        if field.type in _INT64:
            data[field.name] = [int(v) for v in value] if repeated else int(value)
        elif (
            field.message_type is not None and field.message_type.file.package != "google.protobuf"
        ):
            if repeated:
                for item, part in zip(value, data[field.name], strict=True):
                    _numbers(item, part)
            else:
                _numbers(value, data[field.name])
    return data


def as_dict(message: Message) -> dict[str, Any]:
    """A message as the proto's field names (snake_case) with every field shown, numbers as
    numbers, times as RFC 3339 text, enums by name."""
    data = json_format.MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    return _numbers(message, data)


def to_json(message: Message, indent: int | None = 2) -> str:
    """A message as JSON (``as_dict``), indented, or on one line with ``indent=None``."""
    return json.dumps(as_dict(message), indent=indent, ensure_ascii=False)


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
    if decision.overage:
        lines.append("  overage: admitted beyond the limit, under the overage allowance")
    lines.append(f"  contact key  {decision.contact_key}")
    if decision.HasField("usage"):
        u = decision.usage
        lines.append(
            f"  usage        {u.active:,} of {u.limit:,} active, {u.remaining:,} remaining  "
            f"{bar(u.active, u.limit)}"
        )
        lines.append(f"  period       {u.period}  ({when(u.period_start)} to {when(u.period_end)})")
        lines.append(f"  plan         {u.plan}")
        if u.HasField("trial_ends_at"):
            lines.append(f"  trial ends   {when(u.trial_ends_at)}")
        if u.overage:
            lines.append(f"  overage      {u.overage:,} admitted beyond the limit")
    return "\n".join(lines)


def subscription_text(sub: admin_pb.Subscription) -> str:
    """A subscription as an aligned block."""
    packs = f" ({sub.packs:,} MAC pack{'s' if sub.packs != 1 else ''})" if sub.packs else ""
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
        "overage       "
        + (
            f"{sub.overage_percent}%: up to "
            f"{sub.effective_limit + sub.effective_limit * sub.overage_percent // 100:,} "
            "when no trial applies"
            if sub.overage_percent
            else "none (denies at the limit)"
        ),
        "thresholds    "
        + ", ".join(f"{t}%" for t in sub.thresholds)
        + ("   (the service's)" if sub.default_thresholds else ""),
    ]
    if sub.HasField("trial_ends_at"):
        lines.append(f"trial ends    {when(sub.trial_ends_at)}")
    lines.append(
        "flood guard   "
        + (flood_guard_text(sub.flood_guard) if sub.HasField("flood_guard") else "none")
    )
    return "\n".join(lines)


def flood_guard_text(guard: admin_pb.FloodGuard) -> str:
    """A flood guard as ``100 new contacts a minute, then hold (deny)``."""
    action = admin_pb.FloodGuard.Action.Name(guard.action).removeprefix("ACTION_")
    then = {"HOLD": "hold (deny)", "FLAG": "flag (admit, record the flood)"}.get(action, action)
    return f"{guard.new_per_minute:,} new contacts a minute, then {then}"


_SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[int]) -> str:
    """Values as one line of block characters, the largest a full block (0 a space)."""
    top = max(values, default=0)
    if top <= 0:
        return " " * len(values)
    return "".join(
        " " if v <= 0 else _SPARKS[min(len(_SPARKS) - 1, (v * len(_SPARKS) - 1) // top)]
        for v in values
    )


def breakdown_text(reply: admin_pb.GetUsageResponse) -> list[str]:
    """Whether the period is closed, the forecast, the channels table and the days' sparkline
    of a usage reply."""
    u = reply.usage
    lines: list[str] = []
    if reply.closed:
        lines.append(f"closed      {when(reply.closed_at)}: the count is final (statements)")
    if reply.forecast_active and reply.forecast_active != u.active and not reply.closed:
        share = f" ({reply.forecast_active / u.limit:.0%} of the limit)" if u.limit else ""
        lines.append(
            f"forecast    {reply.forecast_active:,} by the period's end at this pace{share}"
        )
    if reply.channels:
        width = max(len("channel"), *(len(c.channel) for c in reply.channels))
        total = sum(c.active for c in reply.channels) or 1
        lines += ["", f"{'channel':<{width}}  {'active':>9}"]
        lines += [
            f"{c.channel:<{width}}  {c.active:>9,}  {c.active / total:4.0%}" for c in reply.channels
        ]
    if reply.days:
        counts = {d.date: d.admitted for d in reply.days}
        first, last = (
            date.fromisoformat(reply.days[0].date),
            date.fromisoformat(reply.days[-1].date),
        )
        span = [first + timedelta(days=n) for n in range((last - first).days + 1)]
        values = [counts.get(d.isoformat(), 0) for d in span]
        peak = max(reply.days, key=lambda d: d.admitted)
        lines += [
            "",
            f"new contacts by day, {first.isoformat()} to {last.isoformat()}: "
            f"{sum(values):,}, most {peak.admitted:,} on {peak.date}",
            sparkline(values),
        ]
    return lines

"""What goes into Redis and what comes back: script arguments and replies, the subscription and
counts hashes, stream entries."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sidecar.domain.audit import AuditContext
from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.clock import from_ms, to_ms
from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Merged, Policy, Reason
from sidecar.domain.errors import PeriodClosed, StaleSubscription
from sidecar.domain.ports import (
    ContactOutcome,
    DecideReply,
    DecideRequest,
    ExemptReply,
    ExemptRequest,
    MergeRequest,
)
from sidecar.domain.subscription import FloodGuard, Resolved, Subscription

# decide.lua's CODE table: what each code means, and whether shadow mode allowed it.
CODES: dict[int, tuple[Reason, bool]] = {
    0: (Reason.ALREADY_ACTIVE, False),
    1: (Reason.ADMITTED, False),
    2: (Reason.LIMIT_REACHED, False),
    3: (Reason.WITHIN_LIMIT, False),
    4: (Reason.TRIAL_STARTED, False),
    5: (Reason.LIMIT_REACHED, True),  # over the limit, allowed by shadow mode
    6: (Reason.EXEMPT, False),
    7: (Reason.RATE_LIMITED, False),
    8: (Reason.RATE_LIMITED, True),  # past the flood guard's rate, allowed by shadow mode
}
# decide.lua's FLAG table.
FLAG_CONFLICT = 1
FLAG_VISITOR_MERGED = 2
FLAG_OVERAGE = 4
_ADMITTING = (1, 4)  # ADMITTED, TRIAL_STARTED

# Each script's ARGV and reply by name, in the order of its header (tests/storage/
# test_script_layouts.py holds one to the other). A name added here needs its place below.

# decide.lua's ARGV, in order: decide_args follows it; the contacts (encode_contacts) come after.
DECIDE_ARGV = (
    "period_key",
    "period_name",
    "now_ms",
    "expire_at_ms",
    "dry_run",
    "limit",  # limit .. events_max: the Policy's, _policy_args
    "plan",
    "trial_plan",
    "trial_limit",
    "trial_days",
    "thresholds",
    "events_max",
    "workspace_id",
    "subscription_version",
    "day",
    "late",
)
# decide.lua's reply: these places, then DECIDE_PER_CONTACT for each contact in order, then
# DECIDE_PER_CHANNEL for each channel changed.
DECIDE_REPLY = (
    "active",
    "limit",
    "trial_until_ms",
    "plan",
    "events_written",
    "channels_changed",
    "identity_version",
    "overage",
)
DECIDE_PER_CONTACT = ("code", "identity", "flags")
DECIDE_PER_CHANNEL = ("channel", "count")
(
    _ACTIVE,
    _LIMIT,
    _TRIAL_UNTIL_MS,
    _PLAN,
    _EVENTS_WRITTEN,
    _CHANNELS_CHANGED,
    _IDENTITY_VERSION,
    _OVERAGE,
) = range(len(DECIDE_REPLY))
_CODE, _IDENTITY, _FLAGS = range(len(DECIDE_PER_CONTACT))
_CHANNEL, _COUNT = range(len(DECIDE_PER_CHANNEL))
_HEAD, _PER_CONTACT, _PER_CHANNEL = (
    len(DECIDE_REPLY),
    len(DECIDE_PER_CONTACT),
    len(DECIDE_PER_CHANNEL),
)
# decide.lua's reply when the subscription's version moved on: nothing was decided.
STALE_REPLY = ("stale", "timezone", "starts_at_ms", "version", "default_region")
STALE = -1  # its first place
_TIMEZONE, _STARTS_AT_MS, _VERSION, _DEFAULT_REGION = range(1, len(STALE_REPLY))
# decide.lua's reply when the period is closed: nothing was decided.
CLOSED_REPLY = ("closed", "closed_at_ms")
CLOSED = -2  # its first place
_CLOSED_AT_MS = 1

# The audit places of the scripts that change a workspace (lib/audit.lua's read_audit).
AUDIT_ARGV = ("admin", "method", "now_ms", "retention_ms")
# merge.lua's ARGV (the target contact, then the sources, come after) and reply.
MERGE_ARGV = ("period_key", "expire_at_ms", *AUDIT_ARGV)
MERGE_REPLY = ("survivor", "folded", "uncounted", "active")
# set_exempt.lua's ARGV (the contacts come after) and reply: these places, then
# EXEMPT_PER_CONTACT for each contact.
EXEMPT_ARGV = ("exempt", *AUDIT_ARGV)
EXEMPT_REPLY = ("changed",)
EXEMPT_PER_CONTACT = ("identity",)
# set_subscription.lua's ARGV: these, then field, value, ... of SUBSCRIPTION_FIELDS; its reply
# is the new version alone.
SET_SUBSCRIPTION_ARGV = ("expected_version", *AUDIT_ARGV, "audited")
# close.lua's ARGV and reply.
CLOSE_ARGV = (
    "period_key",
    "period_name",
    "start_ms",
    "end_ms",
    "now_ms",
    "limit",
    "plan",
    "events_max",
    "workspace_id",
)
CLOSE_REPLY = ("closed", "closed_at_ms", "statement")


def admitted_any(reply: list[Any]) -> bool:
    """Whether a ``decide.lua`` reply counted a new contact."""
    if reply[0] in (STALE, CLOSED):
        return False
    tail = len(reply) - _PER_CHANNEL * reply[_CHANNELS_CHANGED]
    return any(reply[i + _CODE] in _ADMITTING for i in range(_HEAD, tail, _PER_CONTACT))


# set_subscription.lua writes these fields, and the version.
SUBSCRIPTION_FIELDS = (
    "plan",
    "packs",
    "custom_limit",
    "timezone",
    "starts_at",
    "platform_version",
    "major",
    "shadow",
    "limit",
    "trial_plan",
    "trial_limit",
    "trial_days",
    "updated_at",
    "default_region",
    "thresholds",
    "overage_percent",
    "flood_rate",
    "flood_action",
)


def encode_contacts(contacts: Sequence[KeyedContact]) -> list[Any]:
    """Contacts as the scripts read them (``lib/identity.lua``, ``read_contacts``): each as
    n, n primary keys, the visitor key or '', the channel or ''."""
    out: list[Any] = []
    for contact in contacts:
        out.append(len(contact.primaries))
        out.extend(contact.primaries)
        out.append(contact.visitor)
        out.append(contact.channel)
    return out


@functools.lru_cache(maxsize=16)
def _policy_args(policy: Policy) -> tuple[Any, ...]:
    return (
        policy.limit,
        policy.plan,
        policy.trial_plan,
        policy.trial_limit,
        policy.trial_days,
        ",".join(str(t) for t in policy.thresholds),
        policy.events_max,
    )


def decide_args(request: DecideRequest) -> list[Any]:
    """``decide.lua``'s ARGV: ``DECIDE_ARGV`` in order, then the contacts."""
    period = request.period
    return [
        period.key,
        period.name,
        request.now_ms,
        request.expire_at_ms,
        1 if request.dry_run else 0,
        *_policy_args(request.policy),
        request.workspace_id,
        request.subscription_version,
        request.day,
        1 if request.late else 0,
        *encode_contacts(request.contacts),
    ]


def events_written(reply: list[Any]) -> int:
    """How many events a ``decide.lua`` reply says it recorded."""
    return 0 if reply[0] in (STALE, CLOSED) else int(reply[_EVENTS_WRITTEN])


def decide_reply(reply: list[Any], period_name: str = "") -> DecideReply:
    """A ``decide.lua`` reply (``DECIDE_REPLY``, ``STALE_REPLY`` or ``CLOSED_REPLY``).

    :raise StaleSubscription: the reply says the subscription's version moved on.
    :raise PeriodClosed: the period (``period_name``) is closed.
    """
    if reply[0] == CLOSED:
        raise PeriodClosed(period_name, int(reply[_CLOSED_AT_MS]))
    if reply[0] == STALE:
        raise StaleSubscription(
            SubscriptionBasis(
                reply[_TIMEZONE].decode(),
                int(reply[_STARTS_AT_MS]),
                reply[_VERSION].decode(),
                reply[_DEFAULT_REGION].decode(),
            )
        )
    outcomes = []
    # the channels changed follow the contacts
    tail = len(reply) - _PER_CHANNEL * reply[_CHANNELS_CHANGED]
    for i in range(_HEAD, tail, _PER_CONTACT):
        reason, shadowed = CODES[reply[i + _CODE]]
        flags = reply[i + _FLAGS]
        outcomes.append(
            ContactOutcome(
                reason=reason,
                identity=reply[i + _IDENTITY],
                shadowed=shadowed,
                conflict=bool(flags & FLAG_CONFLICT),
                visitor_merged=bool(flags & FLAG_VISITOR_MERGED),
                overage=bool(flags & FLAG_OVERAGE),
            )
        )
    return DecideReply(
        active=reply[_ACTIVE],
        limit=reply[_LIMIT],
        plan=reply[_PLAN].decode(),
        trial_until_ms=reply[_TRIAL_UNTIL_MS],
        outcomes=outcomes,
        channels=tuple(
            (reply[i + _CHANNEL].decode(), reply[i + _COUNT])
            for i in range(tail, len(reply), _PER_CHANNEL)
        ),
        identity_version=int(reply[_IDENTITY_VERSION]),
        overage=reply[_OVERAGE],
    )


def audit_args(audit: AuditContext, retention_ms: int) -> list[Any]:
    """The ``AUDIT_ARGV`` places of a script that changes a workspace."""
    return [audit.admin, audit.method, audit.at_ms, retention_ms]


def merge_args(request: MergeRequest, retention_ms: int) -> list[Any]:
    """``merge.lua``'s ARGV: ``MERGE_ARGV`` in order, then the target and the sources."""
    contacts = encode_contacts([request.target, *request.sources])
    audit = audit_args(request.audit, retention_ms)
    return [request.period_key, request.expire_at_ms, *audit, *contacts]


def merge_reply(reply: list[Any]) -> Merged:
    """A ``merge.lua`` reply (``MERGE_REPLY``)."""
    got = dict(zip(MERGE_REPLY, reply, strict=True))
    return Merged(got["survivor"], int(got["folded"]), int(got["uncounted"]), int(got["active"]))


def exempt_args(request: ExemptRequest, retention_ms: int) -> list[Any]:
    """``set_exempt.lua``'s ARGV: ``EXEMPT_ARGV`` in order, then the contacts."""
    audit = audit_args(request.audit, retention_ms)
    return [1 if request.exempt else 0, *audit, *encode_contacts(request.contacts)]


def exempt_reply(reply: list[Any]) -> ExemptReply:
    """A ``set_exempt.lua`` reply (``EXEMPT_REPLY``, then ``EXEMPT_PER_CONTACT`` each)."""
    return ExemptReply(int(reply[0]), list(reply[len(EXEMPT_REPLY) :]))


def basis_reply(reply: list[Any]) -> SubscriptionBasis:
    """``HMGET subscription timezone starts_at version default_region``."""
    timezone, starts_at, version, region = (None if v is None else v.decode() for v in reply)
    return SubscriptionBasis(timezone or "UTC", int(starts_at or 0), version or "", region or "")


def subscription_args(resolved: Resolved, updated_at: datetime) -> list[Any]:
    """``set_subscription.lua``'s ARGV: field, value, ... of ``SUBSCRIPTION_FIELDS``."""
    sub = resolved.subscription
    values: tuple[Any, ...] = (
        sub.plan,
        sub.packs,
        sub.custom_limit,
        sub.timezone,
        to_ms(sub.starts_at) if sub.starts_at else 0,
        sub.platform_version,
        sub.major,
        int(sub.shadow_mode),
        resolved.limit,
        resolved.trial_plan,
        resolved.trial_limit,
        resolved.trial_days,
        to_ms(updated_at),
        sub.default_region,
        ",".join(str(t) for t in sub.thresholds),
        sub.overage_percent,
        sub.flood_guard.new_per_minute if sub.flood_guard else 0,
        sub.flood_guard.action if sub.flood_guard else "",
    )
    return [x for pair in zip(SUBSCRIPTION_FIELDS, values, strict=True) for x in pair]


def subscription(workspace_id: str, fields: dict[str, str]) -> Resolved | None:
    """The subscription hash as ``subscription_args`` wrote it; ``None`` when empty."""
    if not fields:
        return None
    starts = int(fields.get("starts_at", "0"))
    return Resolved(
        subscription=Subscription(
            workspace_id=workspace_id,
            plan=fields["plan"],
            packs=int(fields.get("packs", "0")),
            custom_limit=int(fields.get("custom_limit", "0")),
            timezone=fields.get("timezone", "UTC"),
            starts_at=from_ms(starts) if starts else None,
            platform_version=fields.get("platform_version", ""),
            shadow_mode=fields.get("shadow") == "1",
            default_region=fields.get("default_region", ""),
            thresholds=tuple(int(t) for t in fields.get("thresholds", "").split(",") if t),
            overage_percent=int(fields.get("overage_percent", "0")),
            flood_guard=flood_guard(fields),
        ),
        limit=int(fields["limit"]),
        trial_plan=fields.get("trial_plan", ""),
        trial_limit=int(fields.get("trial_limit", "0")),
        trial_days=int(fields.get("trial_days", "0")),
        updated_at=from_ms(int(fields.get("updated_at", "0"))),
        version=int(fields.get("version", "0")),
    )


def flood_guard(fields: dict[str, str]) -> FloodGuard | None:
    """The subscription hash's flood guard (``flood_rate`` 0 or missing: none)."""
    rate = int(fields.get("flood_rate") or 0)
    return FloodGuard(rate, fields.get("flood_action", "")) if rate else None


# forget.lua's ARGV (the contact comes after) and reply; index_backfill.lua's (the links'
# fields come after) and links_expire.lua's (the index's fields come after).
FORGET_ARGV = ("seed", *AUDIT_ARGV)
FORGET_REPLY = ("forgotten", "identifiers_removed", "periods")
INDEX_BACKFILL_ARGV = ("ordinal",)
INDEX_BACKFILL_REPLY = ("filed",)
LINKS_EXPIRE_ARGV = ("cutoff",)
LINKS_EXPIRE_REPLY = ("expired", "removed")

"""Conversion between the domain types and the ``mac.v1`` protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.domain.contact import ContactFields, key_text
from sidecar.domain.decision import BatchResult, Decision, Event, Merged, PeriodCount, Usage
from sidecar.domain.errors import InvalidArgument
from sidecar.domain.period import BillingPeriod
from sidecar.domain.subscription import Resolved, Subscription
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.usecases.admin import ContactPage

_bounds: dict[tuple[datetime, datetime], tuple[Timestamp, Timestamp]] = {}


def timestamp(instant: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    ts = Timestamp()
    ts.FromDatetime(instant)
    return ts


def _period_bounds(period: BillingPeriod) -> tuple[Timestamp, Timestamp]:
    # The same few periods come back on every call: convert their bounds once.
    bounds = (period.start, period.end)
    found = _bounds.get(bounds)
    if found is None:
        if len(_bounds) > 4096:
            _bounds.clear()
        found = _bounds[bounds] = (timestamp(period.start), timestamp(period.end))
    return found


def contact_fields(contact: pb.Contact) -> ContactFields:
    """The fields of a ``mac.v1.Contact``."""
    return ContactFields(
        contact.id, contact.email, contact.phone, contact.channel, contact.visitor_id
    )


def usage_message(usage: Usage) -> pb.Usage:
    """``mac.v1.Usage`` of a usage."""
    start, end = _period_bounds(usage.period)
    message = pb.Usage(
        period=usage.period.name,
        period_start=start,
        period_end=end,
        active=usage.active,
        limit=usage.limit,
        remaining=usage.remaining,
        plan=usage.plan,
    )
    if usage.trial_ends_at is not None:
        message.trial_ends_at.CopyFrom(timestamp(usage.trial_ends_at))
    return message


def decision_message(decision: Decision) -> pb.Decision:
    """``mac.v1.Decision`` of a decision."""
    message = pb.Decision(
        allowed=decision.allowed,
        reason=decision.reason.value,  # type: ignore[arg-type]
        contact_key=decision.contact_key,
        identity_conflict=decision.identity_conflict,
        shadow_denied=decision.shadow_denied,
        visitor_merged=decision.visitor_merged,
    )
    if decision.usage is not None:
        message.usage.CopyFrom(usage_message(decision.usage))
    return message


def batch_message(result: BatchResult) -> pb.ActivateBatchResponse:
    """``mac.v1.ActivateBatchResponse`` of a batch."""
    response = pb.ActivateBatchResponse(decisions=[decision_message(d) for d in result.decisions])
    if result.usage is not None:
        response.usage.CopyFrom(usage_message(result.usage))
    return response


def subscription_message(resolved: Resolved) -> admin_pb.Subscription:
    """``mac.v1.Subscription`` of a resolved subscription."""
    sub = resolved.subscription
    message = admin_pb.Subscription(
        workspace_id=sub.workspace_id,
        plan=sub.plan,
        packs=sub.packs,
        custom_limit=sub.custom_limit,
        timezone=sub.timezone,
        platform_version=sub.platform_version,
        shadow_mode=sub.shadow_mode,
        effective_limit=resolved.limit,
        is_default=resolved.is_default,
        trial_plan=resolved.trial_plan,
        trial_limit=resolved.trial_limit,
        default_region=sub.default_region,
    )
    if sub.starts_at is not None:
        message.starts_at.CopyFrom(timestamp(sub.starts_at))
    if resolved.trial_ends_at is not None:
        message.trial_ends_at.CopyFrom(timestamp(resolved.trial_ends_at))
    if resolved.updated_at is not None:
        message.updated_at.CopyFrom(timestamp(resolved.updated_at))
    return message


def subscription_of(request: admin_pb.SetSubscriptionRequest) -> Subscription:
    """The subscription a ``SetSubscriptionRequest`` asks for."""
    starts_at = None
    if request.HasField("starts_at"):
        try:
            starts_at = request.starts_at.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise InvalidArgument("starts_at", "is not a valid time") from None
    return Subscription(
        workspace_id=request.workspace_id,
        plan=request.plan,
        packs=request.packs,
        custom_limit=request.custom_limit,
        timezone=request.timezone or "UTC",
        starts_at=starts_at,
        platform_version=request.platform_version,
        shadow_mode=request.shadow_mode,
        default_region=request.default_region,
    )


def usage_response(
    usage: Usage, history: list[PeriodCount], recorded: bool
) -> admin_pb.GetUsageResponse:
    """``mac.v1.GetUsageResponse``."""
    return admin_pb.GetUsageResponse(
        usage=usage_message(usage),
        recorded=recorded,
        history=[
            admin_pb.PeriodCount(period=p.name, active=p.active, limit=p.limit) for p in history
        ],
    )


def contact_page(page: ContactPage) -> admin_pb.ListActiveContactsResponse:
    """``mac.v1.ListActiveContactsResponse``."""
    return admin_pb.ListActiveContactsResponse(
        contact_keys=page.contact_keys,
        next_page_token=page.next_page_token,
        total=page.total,
        period=page.period,
    )


def event_message(event: Event) -> admin_pb.Event:
    """``mac.v1.Event`` of a recorded event."""
    message = admin_pb.Event(
        id=event.id,
        workspace_id=event.workspace_id,
        type=admin_pb.Event.Type.Value(f"TYPE_{event.type}"),  # type: ignore[arg-type]
        period=event.period,
        threshold_percent=event.threshold_percent,
        active=event.active,
        limit=event.limit,
    )
    message.at.FromMilliseconds(event.at_ms)
    return message


def merge_response(found: tuple[Merged, Usage]) -> admin_pb.MergeResponse:
    """``mac.v1.MergeResponse``."""
    merged, usage = found
    return admin_pb.MergeResponse(
        contact_key=key_text(merged.survivor),
        folded=merged.folded,
        uncounted=merged.uncounted,
        usage=usage_message(usage),
    )

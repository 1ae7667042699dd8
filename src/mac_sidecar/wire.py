"""Conversion between the domain types and the ``mac.v1`` protobuf messages."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp

from mac_sidecar.decision import BatchResult, Decision, Usage
from mac_sidecar.enforcer import ContactFields
from mac_sidecar.gen.mac.v1 import enforcer_pb2 as pb
from mac_sidecar.period import BillingPeriod

_bounds: dict[str, tuple[Timestamp, Timestamp]] = {}


def timestamp(instant: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    ts = Timestamp()
    ts.FromDatetime(instant)
    return ts


def _period_bounds(period: BillingPeriod) -> tuple[Timestamp, Timestamp]:
    # The same few periods come back on every call: convert their bounds once.
    found = _bounds.get(period.key)
    if found is None:
        if len(_bounds) > 256:
            _bounds.clear()
        found = _bounds[period.key] = (timestamp(period.start), timestamp(period.end))
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

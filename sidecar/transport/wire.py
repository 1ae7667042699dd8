"""Conversion between the domain types and the ``mac.v1`` protobuf messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.domain.audit import AuditRecord
from sidecar.domain.cache import LruCache
from sidecar.domain.contact import ContactFields, key_text
from sidecar.domain.decision import (
    BatchResult,
    Decision,
    Event,
    Merged,
    Reason,
    Usage,
    UsageReport,
)
from sidecar.domain.errors import InvalidArgument, quoted
from sidecar.domain.period import BillingPeriod
from sidecar.domain.statement import Statement
from sidecar.domain.subscription import CHANGEABLE, FloodGuard, Resolved, SubscriptionChange
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.usecases.admin import ContactPage
from sidecar.usecases.audit import AuditPage
from sidecar.usecases.statements import StatementPage

# The same few periods come back on every call: their bounds are converted once.
_bounds: LruCache[tuple[datetime, datetime], tuple[Timestamp, Timestamp]] = LruCache(4096)


def timestamp(instant: datetime) -> Timestamp:
    """A protobuf Timestamp of an aware datetime."""
    ts = Timestamp()
    ts.FromDatetime(instant)
    return ts


def _period_bounds(period: BillingPeriod) -> tuple[Timestamp, Timestamp]:
    bounds = (period.start, period.end)
    found = _bounds.get(bounds)
    if found is None:
        found = (timestamp(period.start), timestamp(period.end))
        _bounds.put(bounds, found)
    return found


# The range of google.protobuf.Timestamp: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z.
_SECONDS_MIN = -62_135_596_800
_SECONDS_MAX = 253_402_300_799
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def occurred_at(ts: Timestamp, field: str = "occurred_at") -> datetime:
    """A request's ``occurred_at`` (or the instant ``field``) as an aware UTC instant
    (microseconds kept).

    :raise InvalidArgument: seconds outside 0001-01-01..9999-12-31, or nanos outside
        0..999,999,999.
    """
    seconds, nanos = ts.seconds, ts.nanos
    if not _SECONDS_MIN <= seconds <= _SECONDS_MAX:
        raise InvalidArgument(
            field,
            f"seconds {seconds} is outside a Timestamp's range, 0001-01-01 to 9999-12-31",
        )
    if not 0 <= nanos <= 999_999_999:
        raise InvalidArgument(field, f"nanos {nanos} is outside 0..999999999")
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def event_time(
    request: pb.ActivateRequest | pb.CheckRequest | pb.ActivateBatchRequest | pb.CheckBatchRequest,
) -> datetime | None:
    """The request's ``occurred_at`` (``None`` when absent: now), as ``occurred_at`` reads it."""
    return occurred_at(request.occurred_at) if request.HasField("occurred_at") else None


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
        overage=usage.overage,
    )
    if usage.trial_ends_at is not None:
        message.trial_ends_at.CopyFrom(timestamp(usage.trial_ends_at))
    return message


# The messages of the usages converted last: the warm path answers the decisions of a
# workspace with the usage of its last reply from the store, one object, many times.
# Keyed by identity, each holding its usage so that the id is not reused meanwhile.
_usage_messages: LruCache[int, tuple[Usage, pb.Usage]] = LruCache(1024)


def _usage_of(usage: Usage) -> pb.Usage:
    found = _usage_messages.get(id(usage))
    if found is not None and found[0] is usage:
        return found[1]
    message = usage_message(usage)
    _usage_messages.put(id(usage), (usage, message))
    return message


def fill_decision(message: pb.Decision, decision: Decision) -> None:
    """Set the fields of ``message`` (a new one, or one inside a response) to ``decision``;
    the fields that are false stay unset, as they serialize the same."""
    message.allowed = decision.allowed
    message.reason = decision.reason  # type: ignore[assignment]  # an IntEnum of its values
    message.contact_key = decision.contact_key
    if decision.identity_conflict:
        message.identity_conflict = True
    if decision.shadow_denied:
        message.shadow_denied = True
    if decision.visitor_merged:
        message.visitor_merged = True
    if decision.from_local_record:
        message.from_local_record = True
    if decision.overage:
        message.overage = True
    if decision.usage is not None:
        message.usage.CopyFrom(_usage_of(decision.usage))


def decision_message(decision: Decision) -> pb.Decision:
    """``mac.v1.Decision`` of a decision."""
    message = pb.Decision()
    fill_decision(message, decision)
    return message


def batch_message(result: BatchResult) -> pb.ActivateBatchResponse:
    """``mac.v1.ActivateBatchResponse`` of a batch."""
    response = pb.ActivateBatchResponse()
    add = response.decisions.add  # filled in place: no message built, then copied in
    for decision in result.decisions:
        fill_decision(add(), decision)
    if result.usage is not None:
        response.usage.CopyFrom(usage_message(result.usage))
    return response


def check_batch_message(result: BatchResult) -> pb.CheckBatchResponse:
    """``mac.v1.CheckBatchResponse``: the batch's decisions and their totals."""
    response = pb.CheckBatchResponse()
    add = response.decisions.add
    for d in result.decisions:
        fill_decision(add(), d)
        if not d.allowed:
            response.denied += 1
        elif d.overage:
            response.overage += 1  # counted apart: beyond the limit, under the allowance
        elif d.reason in (Reason.WITHIN_LIMIT, Reason.TRIAL_STARTED):
            response.admitted += 1
        elif d.reason is Reason.ALREADY_ACTIVE:
            response.already_active += 1
        elif d.reason is Reason.EXEMPT or d.shadow_denied:
            response.uncounted += 1
    response.fits = not response.denied
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
        thresholds=resolved.thresholds,
        default_thresholds=not sub.thresholds,
        overage_percent=sub.overage_percent,
    )
    if sub.starts_at is not None:
        message.starts_at.CopyFrom(timestamp(sub.starts_at))
    if resolved.trial_ends_at is not None:
        message.trial_ends_at.CopyFrom(timestamp(resolved.trial_ends_at))
    if resolved.updated_at is not None:
        message.updated_at.CopyFrom(timestamp(resolved.updated_at))
    if sub.flood_guard is not None:
        message.flood_guard.CopyFrom(flood_guard_message(sub.flood_guard))
    return message


def flood_guard_message(guard: FloodGuard) -> admin_pb.FloodGuard:
    """``mac.v1.FloodGuard`` of a flood guard."""
    return admin_pb.FloodGuard(
        new_per_minute=guard.new_per_minute,
        action=f"ACTION_{guard.action}",  # the enum value of that name
    )


def flood_guard(message: admin_pb.FloodGuard) -> FloodGuard:
    """The flood guard a request's ``mac.v1.FloodGuard`` names (validated by the use case:
    an action outside FLAG and HOLD keeps a name that says what it was)."""
    action = message.action
    name = (
        admin_pb.FloodGuard.Action.Name(action)
        if action in admin_pb.FloodGuard.Action.values()
        else str(action)
    )
    return FloodGuard(message.new_per_minute, name.removeprefix("ACTION_"))


def subscription_change(request: admin_pb.SetSubscriptionRequest) -> SubscriptionChange:
    """The change a ``SetSubscriptionRequest`` asks for (AIP-134): the fields its
    ``update_mask`` names ("*": all), each cleared when the request leaves it unset; without a
    mask, the fields the request sets."""
    if request.HasField("update_mask"):
        paths = list(request.update_mask.paths)
        if paths == ["*"]:
            paths = list(CHANGEABLE)
        for path in paths:
            if path not in CHANGEABLE:
                raise InvalidArgument(
                    "update_mask",
                    f"{quoted(path)} is not a field to change; the fields are "
                    + ", ".join(CHANGEABLE),
                )
    else:
        paths = [name for name in CHANGEABLE if _present(request, name)]
    values = {
        name: _field_value(request, name) if _present(request, name) else CHANGEABLE[name]
        for name in paths
    }
    return SubscriptionChange(request.workspace_id, values)


def _present(request: admin_pb.SetSubscriptionRequest, name: str) -> bool:
    if name == "thresholds":
        return bool(request.thresholds)
    return request.HasField(name)


def _field_value(request: admin_pb.SetSubscriptionRequest, name: str) -> Any:
    if name == "thresholds":
        return tuple(request.thresholds)
    if name == "flood_guard":
        return flood_guard(request.flood_guard)
    if name == "starts_at":
        try:
            return request.starts_at.ToDatetime(tzinfo=UTC)
        except (ValueError, OverflowError):
            raise InvalidArgument("starts_at", "is not a valid time") from None
    return getattr(request, name)


def usage_response(report: UsageReport) -> admin_pb.GetUsageResponse:
    """``mac.v1.GetUsageResponse``."""
    response = admin_pb.GetUsageResponse(
        usage=usage_message(report.usage),
        recorded=report.recorded,
        history=[
            admin_pb.PeriodCount(period=p.name, active=p.active, limit=p.limit)
            for p in report.history
        ],
        channels=[admin_pb.ChannelCount(channel=c, active=n) for c, n in report.channels],
        days=[admin_pb.DayCount(date=d, admitted=n) for d, n in report.days],
        forecast_active=report.forecast_active,
    )
    if report.closed_at is not None:
        response.closed = True
        response.closed_at.CopyFrom(timestamp(report.closed_at))
    if report.flood_guard is not None:
        response.flood_guard.CopyFrom(flood_guard_message(report.flood_guard))
    if report.last_flood_at is not None:
        response.last_flood_at.CopyFrom(timestamp(report.last_flood_at))
    return response


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
    if event.type == "PERIOD_CLOSED":
        message.plan = event.plan
        message.packs = event.packs
        message.overage = event.overage
        message.trial_plan = event.trial_plan
        if event.trial_plan:
            message.trial_ends_at.FromMilliseconds(event.trial_ends_at_ms)
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


def statement_message(statement: Statement) -> admin_pb.Statement:
    """``mac.v1.Statement`` of a closed period's statement."""
    start, end = _period_bounds(statement.period)
    message = admin_pb.Statement(
        workspace_id=statement.workspace_id,
        period=statement.period.name,
        period_start=start,
        period_end=end,
        active=statement.active,
        limit=statement.limit,
        plan=statement.plan,
        packs=statement.packs,
        trial_plan=statement.trial_plan,
        overage=statement.overage,
        closed_at=timestamp(statement.closed_at),
    )
    if statement.trial_ends_at is not None:
        message.trial_ends_at.CopyFrom(timestamp(statement.trial_ends_at))
    return message


def statements_response(page: StatementPage) -> admin_pb.ListStatementsResponse:
    """``mac.v1.ListStatementsResponse``."""
    return admin_pb.ListStatementsResponse(
        statements=[statement_message(s) for s in page.statements],
        next_page_token=page.next_page_token,
    )


def audit_since(request: admin_pb.ListAuditRecordsRequest) -> datetime | None:
    """A ``ListAuditRecordsRequest``'s ``since`` (``None`` when absent: every record kept)."""
    return occurred_at(request.since, "since") if request.HasField("since") else None


def audit_record_message(record: AuditRecord) -> admin_pb.AuditRecord:
    return admin_pb.AuditRecord(
        id=record.id,
        at=timestamp(record.at),
        admin=record.admin,
        method=record.method,
        workspace_id=record.workspace_id,
        changed=record.changed,
        changes=[
            admin_pb.AuditChange(field=c.field, before=c.before, after=c.after)
            for c in record.changes
        ],
    )


def audit_records_response(page: AuditPage) -> admin_pb.ListAuditRecordsResponse:
    return admin_pb.ListAuditRecordsResponse(
        records=[audit_record_message(r) for r in page.records],
        next_page_token=page.next_page_token,
    )

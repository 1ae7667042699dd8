"""What the client answers: decisions and usage as plain values, and the requests it sends."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.gen.mac.v1 import enforcer_pb2 as pb

BACKEND_UNAVAILABLE = "REASON_BACKEND_UNAVAILABLE"
_CONTACT_FIELDS = ("id", "email", "phone", "channel", "visitor_id")


@dataclass(frozen=True, slots=True)
class Usage:
    """A workspace's usage in one billing period ``[period_start, period_end)``."""

    period: str
    period_start: datetime
    period_end: datetime
    active: int
    limit: int
    remaining: int
    plan: str
    trial_ends_at: datetime | None = None
    overage: int = 0  # new contacts admitted beyond the limit under the overage allowance


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one contact.

    :param reason: the ``mac.v1.Reason`` name, like ``"REASON_ADMITTED"``.
    :param usage: after the decision; ``None`` inside a batch and when Redis was unreachable.
    :param from_client: the sidecar could not be reached and the client's ``on_unavailable``
        policy answered.
    :param message: the ``mac.v1.Decision`` received (``None`` when ``from_client``).
    """

    allowed: bool
    reason: str
    contact_key: str
    usage: Usage | None
    identity_conflict: bool = False
    shadow_denied: bool = False
    visitor_merged: bool = False
    from_local_record: bool = False  # answered during a Redis outage from the sidecar's record
    from_client: bool = False
    overage: bool = False  # admitted beyond the limit under the overage allowance
    message: pb.Decision | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The decisions of a batch in request order, and the usage after the last one."""

    decisions: list[Decision]
    usage: Usage | None
    message: pb.ActivateBatchResponse | None = None


@dataclass(frozen=True, slots=True)
class StreamError:
    """A message of ``activate_stream`` the sidecar did not decide; the stream goes on.

    :param code: the status a unary call would have ended with (``INVALID_ARGUMENT``, ...).
    :param message: its message, starting with the field's path for ``INVALID_ARGUMENT``.
    """

    code: grpc.StatusCode
    message: str


StreamRequest = pb.ActivateRequest | pb.CheckRequest | pb.ActivateStreamRequest
_CODES = {code.value[0]: code for code in grpc.StatusCode}


def stream_request(request: StreamRequest) -> pb.ActivateStreamRequest:
    """The ``ActivateStreamRequest`` of an ``ActivateRequest`` or a ``CheckRequest``."""
    if isinstance(request, pb.ActivateRequest):
        return pb.ActivateStreamRequest(activate=request)
    if isinstance(request, pb.CheckRequest):
        return pb.ActivateStreamRequest(check=request)
    return request


def stream_result(message: pb.ActivateStreamResponse) -> Decision | StreamError:
    """An ``ActivateStreamResponse`` as a value."""
    if message.HasField("decision"):
        return decision_of(message.decision)
    code = _CODES.get(message.error.code, grpc.StatusCode.UNKNOWN)
    return StreamError(code, message.error.message)


def _instant(ts: Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def usage_of(message: pb.Usage) -> Usage:
    """A ``mac.v1.Usage`` as a value."""
    return Usage(
        period=message.period,
        period_start=_instant(message.period_start),
        period_end=_instant(message.period_end),
        active=message.active,
        limit=message.limit,
        remaining=message.remaining,
        plan=message.plan,
        trial_ends_at=_instant(message.trial_ends_at)
        if message.HasField("trial_ends_at")
        else None,
        overage=message.overage,
    )


def decision_of(message: pb.Decision) -> Decision:
    """A ``mac.v1.Decision`` as a value."""
    return Decision(
        allowed=message.allowed,
        reason=pb.Reason.Name(message.reason),
        contact_key=message.contact_key,
        usage=usage_of(message.usage) if message.HasField("usage") else None,
        identity_conflict=message.identity_conflict,
        shadow_denied=message.shadow_denied,
        visitor_merged=message.visitor_merged,
        from_local_record=message.from_local_record,
        overage=message.overage,
        message=message,
    )


def batch_of(message: pb.ActivateBatchResponse) -> BatchResult:
    """A ``mac.v1.ActivateBatchResponse`` as values."""
    return BatchResult(
        decisions=[decision_of(d) for d in message.decisions],
        usage=usage_of(message.usage) if message.HasField("usage") else None,
        message=message,
    )


def unavailable(allowed: bool) -> Decision:
    """The client's own answer when the sidecar cannot be reached."""
    return Decision(
        allowed=allowed, reason=BACKEND_UNAVAILABLE, contact_key="", usage=None, from_client=True
    )


def contact(value: pb.Contact | Mapping[str, str] | None = None, **fields: str) -> pb.Contact:
    """A ``mac.v1.Contact`` from a message, a mapping or keywords (id, email, phone, channel,
    visitor_id).

    :raise TypeError: for a field a contact does not have.
    """
    if isinstance(value, pb.Contact):
        return value
    given: dict[str, Any] = {**(value or {}), **fields}
    unknown = sorted(set(given) - set(_CONTACT_FIELDS))
    if unknown:
        raise TypeError(f"a contact has no field {', '.join(unknown)}")
    return pb.Contact(**{k: v for k, v in given.items() if v})

"""What a webhook carries: the JSON body of an event, its signatures, and when to try again.

The body is built from the stream entry alone, so every attempt to deliver an event sends the
same bytes (and the same ``X-MAC-Signature``); only ``X-MAC-Timestamp`` and the signature that
covers it change from one attempt to the next. docs/webhooks.md is the receiver's side.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime

from sidecar import __version__
from sidecar.domain.decision import Event

SIGNATURE_HEADER = "X-MAC-Signature"
TIMESTAMP_HEADER = "X-MAC-Timestamp"
TIMESTAMP_SIGNATURE_HEADER = "X-MAC-Timestamp-Signature"
DELIVERY_HEADER = "X-MAC-Delivery"
# The first retry waits up to this long; each further one up to twice as long, to the cap.
BACKOFF_BASE_S = 0.5


def delivery_id(event: Event) -> str:
    """The event's delivery id, ``<workspace>:<stream id>``: the same on every attempt and
    redelivery, unique across workspaces; what receivers deduplicate on."""
    return f"{event.workspace_id}:{event.id}"


def rfc3339(at_ms: int) -> str:
    """Unix milliseconds as RFC 3339 in UTC, as protobuf's JSON writes a Timestamp:
    ``2026-11-15T12:00:00Z``, or ``2026-11-15T12:00:00.250Z`` when there are milliseconds."""
    instant = datetime.fromtimestamp(at_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    millis = at_ms % 1000
    return f"{instant}.{millis:03d}Z" if millis else f"{instant}Z"


def payload(event: Event) -> bytes:
    """The JSON body: ``delivery_id``, then the fields of ``mac.v1.Event`` by their proto
    names, numbers as JSON numbers, ``type`` as the enum's name, ``at`` in RFC 3339.
    ``plan``, ``packs``, ``overage`` and ``trial_plan`` are a ``PERIOD_CLOSED`` event's (empty
    or 0 for the others), ``trial_ends_at`` only when a trial ran in the closed period."""
    body = {
        "delivery_id": delivery_id(event),
        "id": event.id,
        "workspace_id": event.workspace_id,
        "type": f"TYPE_{event.type}",
        "period": event.period,
        "threshold_percent": event.threshold_percent,
        "active": event.active,
        "limit": event.limit,
        "at": rfc3339(event.at_ms),
        "plan": event.plan,
        "packs": event.packs,
        "overage": event.overage,
        "trial_plan": event.trial_plan,
    }
    if event.trial_plan:
        body["trial_ends_at"] = rfc3339(event.trial_ends_at_ms)
    return json.dumps(body, separators=(",", ":")).encode()


def signature(secret: bytes, body: bytes) -> str:
    """``X-MAC-Signature``: ``sha256=`` and the hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def timestamp_signature(secret: bytes, timestamp: int, body: bytes) -> str:
    """``X-MAC-Timestamp-Signature``: ``sha256=`` and the hex HMAC-SHA256 of
    ``<timestamp>.<raw body>``, so a receiver can trust the timestamp it checks for replays."""
    signed = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()


def headers(secret: bytes, body: bytes, event: Event, timestamp: int) -> dict[str, str]:
    """The headers of one attempt made at ``timestamp`` (unix seconds)."""
    return {
        "Content-Type": "application/json",
        "User-Agent": f"mac-sidecar/{__version__}",
        DELIVERY_HEADER: delivery_id(event),
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: signature(secret, body),
        TIMESTAMP_SIGNATURE_HEADER: timestamp_signature(secret, timestamp, body),
    }


def backoff(failures: int, cap_s: float, uniform: Callable[[float, float], float]) -> float:
    """Seconds to wait after the ``failures``-th failed attempt (from 1) at one event.

    Full jitter: anything from 0 to ``BACKOFF_BASE_S * 2**(failures - 1)``, at most ``cap_s``,
    so replicas retrying at once spread out instead of arriving together.

    :param uniform: ``random.uniform`` or a seeded one.
    """
    ceiling = min(cap_s, BACKOFF_BASE_S * 2.0 ** min(failures - 1, 62))
    return uniform(0.0, ceiling)

"""The webhook message: its JSON body, its signatures and the backoff between attempts."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json

import pytest

from sidecar.domain.decision import Event
from sidecar.domain.errors import ConfigError
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.settings import Settings
from sidecar.transport import wire
from sidecar.usecases import webhooks

SECRET = b"whsec-test-0123456789abcdef"
EVENT = Event(
    id="1763208000000-3",
    workspace_id="acme",
    type="THRESHOLD_CROSSED",
    period="2026-11",
    threshold_percent=80,
    active=80,
    limit=100,
    at_ms=1_763_208_000_000,
)


def test_the_body_is_the_event_by_its_proto_names_with_a_delivery_id() -> None:
    body = json.loads(webhooks.payload(EVENT))
    assert body == {
        "delivery_id": "acme:1763208000000-3",
        "id": "1763208000000-3",
        "workspace_id": "acme",
        "type": "TYPE_THRESHOLD_CROSSED",
        "period": "2026-11",
        "threshold_percent": 80,
        "active": 80,
        "limit": 100,
        "at": "2025-11-15T12:00:00Z",
        "plan": "",
        "packs": 0,
        "overage": 0,
        "trial_plan": "",
    }


def test_an_overage_started_event_carries_its_proto_type_name() -> None:
    event = dataclasses.replace(
        EVENT, type="OVERAGE_STARTED", period="2026-11", threshold_percent=0, active=101, limit=100
    )
    body = json.loads(webhooks.payload(event))
    assert (body["type"], body["active"], body["limit"]) == ("TYPE_OVERAGE_STARTED", 101, 100)


def test_a_flood_detected_event_carries_its_proto_type_name_and_the_rate_as_limit() -> None:
    event = dataclasses.replace(
        EVENT, type="FLOOD_DETECTED", threshold_percent=0, active=40, limit=50
    )
    body = json.loads(webhooks.payload(event))
    assert (body["type"], body["active"], body["limit"]) == ("TYPE_FLOOD_DETECTED", 40, 50)
    message = wire.event_message(event)
    assert (message.type, message.limit) == (admin_pb.Event.TYPE_FLOOD_DETECTED, 50)


def test_a_period_closed_body_carries_the_final_plan_packs_overage_and_trial() -> None:
    closed = dataclasses.replace(
        EVENT,
        type="PERIOD_CLOSED",
        threshold_percent=0,
        active=120,
        limit=110,
        plan="growth",
        packs=2,
        overage=10,
        trial_plan="scale",
        trial_ends_at_ms=1_763_208_000_000,
    )
    body = json.loads(webhooks.payload(closed))
    assert body["type"] == "TYPE_PERIOD_CLOSED"
    assert (body["active"], body["limit"], body["plan"], body["packs"]) == (120, 110, "growth", 2)
    assert (body["overage"], body["trial_plan"]) == (10, "scale")
    assert body["trial_ends_at"] == "2025-11-15T12:00:00Z"
    without_trial = dataclasses.replace(closed, trial_plan="", trial_ends_at_ms=0)
    body = json.loads(webhooks.payload(without_trial))
    assert body["trial_plan"] == ""
    assert "trial_ends_at" not in body
    # and as WatchEvents carries it
    message = wire.event_message(closed)
    assert (message.plan, message.packs, message.overage, message.trial_plan) == (
        "growth",
        2,
        10,
        "scale",
    )
    assert message.trial_ends_at.ToMilliseconds() == 1_763_208_000_000


def test_the_body_is_the_same_bytes_every_time() -> None:
    assert webhooks.payload(EVENT) == webhooks.payload(EVENT)
    assert b" " not in webhooks.payload(EVENT)


@pytest.mark.parametrize(
    ("at_ms", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_763_208_000_250, "2025-11-15T12:00:00.250Z"),
        (1_763_208_000_007, "2025-11-15T12:00:00.007Z"),
    ],
)
def test_times_are_rfc3339_like_protobuf_json(at_ms: int, text: str) -> None:
    assert webhooks.rfc3339(at_ms) == text


def test_the_signature_is_the_hmac_of_the_raw_body() -> None:
    body = webhooks.payload(EVENT)
    expected = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert webhooks.signature(SECRET, body) == f"sha256={expected}"
    assert webhooks.signature(b"another-secret", body) != f"sha256={expected}"


def test_the_headers_sign_the_body_and_the_timestamp_with_it() -> None:
    body = webhooks.payload(EVENT)
    headers = webhooks.headers(SECRET, body, EVENT, 1_763_208_005)
    assert headers["X-MAC-Timestamp"] == "1763208005"
    assert headers["X-MAC-Delivery"] == "acme:1763208000000-3"
    assert headers["Content-Type"] == "application/json"
    signed = hmac.new(SECRET, b"1763208005." + body, hashlib.sha256).hexdigest()
    assert headers["X-MAC-Timestamp-Signature"] == f"sha256={signed}"
    # a later attempt: the body's signature stays, the timestamp's follows the time
    later = webhooks.headers(SECRET, body, EVENT, 1_763_208_065)
    assert later["X-MAC-Signature"] == headers["X-MAC-Signature"]
    assert later["X-MAC-Timestamp-Signature"] != headers["X-MAC-Timestamp-Signature"]


def test_backoff_is_full_jitter_doubling_to_the_cap() -> None:
    def top(low: float, high: float) -> float:
        return high

    ceilings = [webhooks.backoff(n, 60.0, top) for n in range(1, 11)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert webhooks.backoff(1000, 60.0, top) == 60.0
    assert webhooks.backoff(3, 60.0, lambda low, high: low) == 0.0
    assert webhooks.backoff(1, 0.05, top) == 0.05


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAC_WEBHOOK_URL": "ftp://hooks.example.com/x"}, "must be an http:// or https:// URL"),
        ({"MAC_WEBHOOK_URL": "hooks.example.com/mac"}, "must be an http:// or https:// URL"),
        ({"MAC_WEBHOOK_URL": "https://"}, "must be an http:// or https:// URL"),
        ({"MAC_WEBHOOK_URL": "https://hooks.example.com/mac"}, "needs MAC_WEBHOOK_SECRET"),
        ({"MAC_WEBHOOK_TIMEOUT_MS": "10"}, "MAC_WEBHOOK_TIMEOUT_MS must be at least 100"),
        ({"MAC_WEBHOOK_MAX_BACKOFF_MS": "0"}, "MAC_WEBHOOK_MAX_BACKOFF_MS must be at least 10"),
    ],
)
def test_webhook_settings_are_checked_at_start(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_webhook_settings_by_default_and_redacted() -> None:
    off = Settings()
    assert (off.webhook_url, off.webhook_timeout_ms, off.webhook_max_backoff_ms) == (
        "",
        5000,
        60000,
    )
    on = Settings.from_env(
        {
            "MAC_WEBHOOK_URL": "https://user:pw@hooks.example.com/T0/B1/s3cr3tpath?key=k",
            "MAC_WEBHOOK_SECRET": "whsec-very-secret-value",
        }
    )
    shown = repr(on)
    assert "very-secret" not in shown
    assert "s3cr3tpath" not in shown
    assert "pw@" not in shown
    assert on.public()["webhook_url"] == "https://hooks.example.com/***"
    assert on.public()["webhook_secret"] == "<set>"

"""Bounds that keep hostile input cheap: settings, time zones, log fields, wire counting."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.domain.errors import ConfigError, InvalidArgument
from sidecar.domain.period import parse_period_name
from sidecar.domain.subscription import validate_timezone
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.logs import FIELD_MAX, bound_fields
from sidecar.server.files import AdminToken
from sidecar.settings import Settings
from sidecar.transport.handlers import RequestReader, count_field
from sidecar.transport.status import loggable


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("retention_periods", 100_000),
        ("batch_max", 1_000_000),
        ("redis_timeout", 3600.0),
        ("workers", 1000),
        ("max_streams", 10**6),
    ],
)
def test_every_numeric_setting_has_an_upper_bound(name: str, value: object) -> None:
    with pytest.raises(ConfigError, match="must be at most"):
        Settings(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "right/UTC", "Europe"])
def test_time_zones_are_places_of_the_tz_database(zone: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_timezone(zone)
    assert validate_timezone("America/Sao_Paulo") == "America/Sao_Paulo"


def test_log_fields_are_bounded() -> None:
    event = bound_fields(None, "info", {"event": "x", "workspace": "w" * 1_000_000, "n": 3})
    assert len(event["workspace"]) < FIELD_MAX + 40
    assert event["n"] == 3


def test_a_refused_workspace_id_is_never_logged_as_given() -> None:
    assert loggable("acme") == "acme"
    assert loggable("carol@example.com") == "(not a workspace id)"
    assert loggable("x" * 1_000_000) == "(not a workspace id)"


def test_counting_stops_at_the_bound() -> None:
    data = b"\x0a\x04acme" + b"\x12\x00" * 1000
    assert count_field(data, 2, 5000) == 1000
    assert count_field(data, 2, 10) == 11
    assert count_field(data, 1, 10) == 1


def test_a_batch_over_the_bound_is_refused_before_parsing() -> None:
    reader = RequestReader(pb.ActivateBatchRequest, batch_max=10)
    eleven = pb.ActivateBatchRequest(
        workspace_id="acme", contacts=[pb.Contact(id=str(i)) for i in range(11)]
    )
    with pytest.raises(InvalidArgument, match=r"^contacts: holds more than 10 contacts"):
        reader.read(eleven.SerializeToString())
    ten = pb.ActivateBatchRequest(workspace_id="acme", contacts=eleven.contacts[:10])
    assert len(reader.read(ten.SerializeToString()).contacts) == 10
    with pytest.raises(InvalidArgument, match=r"^request: is not a valid mac\.v1"):
        reader.read(b"\xff\xff\xff")


def test_a_token_file_fails_closed(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("")
    with pytest.raises(ConfigError, match="is empty"):
        AdminToken("", str(token_file))
    token_file.write_text("first-token\n")
    token = AdminToken("", str(token_file))
    assert token.current() == b"first-token"
    token_file.write_text("")  # rewritten in place: empty for a moment
    assert token.current() == b"first-token"
    token_file.write_text("second-token")
    assert token.current() == b"second-token"
    assert AdminToken(" env-token\n").current() == b"env-token"


def test_a_traceback_keeps_its_cause() -> None:
    text = "Traceback (most recent call last):\n" + "  frame\n" * 5000 + "RuntimeError: the cause"
    event = bound_fields(None, "error", {"event": "rpc failed", "exception": text})
    assert event["exception"].endswith("RuntimeError: the cause")
    assert len(event["exception"]) < 8300


@pytest.mark.parametrize(
    "name", ["\uff12\uff10\uff12\uff16-\uff11\uff11", "2026-+1", "2026-1", "26-11", "2026-13"]
)
def test_period_names_are_ascii_yyyy_mm(name: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period_name(name)

"""Bounds that keep hostile input cheap: settings, time zones, log fields, wire counting."""

from __future__ import annotations

import pytest

from sidecar.domain.errors import ConfigError, InvalidArgument
from sidecar.domain.subscription import validate_timezone
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.logs import FIELD_MAX, bound_fields
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

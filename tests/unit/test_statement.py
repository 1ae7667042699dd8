"""When periods close, and which of a workspace's counted periods are due (the pure core)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from sidecar.domain.statement import closed_everywhere_at, closes_at, due_periods, period_of_key

LATENESS = timedelta(minutes=5)
BERLIN = ZoneInfo("Europe/Berlin")


def test_a_whole_month_key_is_the_month_in_the_time_zone() -> None:
    period = period_of_key("2026-11", BERLIN)
    assert period.start == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    assert closes_at(period, LATENESS) == datetime(2026, 11, 30, 23, 5, tzinfo=UTC)


def test_a_mid_month_start_splits_the_month_in_two_keys() -> None:
    starts = datetime(2026, 11, 10, 12, 0, tzinfo=UTC)
    before = period_of_key("2026-11", UTC, starts)
    after = period_of_key(f"2026-11@{int(starts.timestamp())}", UTC, starts)
    assert (before.start, before.end) == (datetime(2026, 11, 1, tzinfo=UTC), starts)
    assert (after.start, after.end) == (starts, datetime(2026, 12, 1, tzinfo=UTC))
    assert (before.name, after.name) == ("2026-11", "2026-11")


@pytest.mark.parametrize("key", ["2026-13", "2026-11@x", "2026-11@", "nov", "2026-11:limit"])
def test_a_key_that_is_no_period_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="not a period key"):
        period_of_key(key)


def test_a_period_is_due_at_its_end_plus_the_lateness_not_before() -> None:
    counted = ["2026-10", "2026-11", "2026-12"]
    just_before = datetime(2026, 12, 1, 0, 4, 59, tzinfo=UTC)
    found = due_periods(counted, ["2026-10"], just_before, LATENESS)
    assert found.due == []
    assert found.next_due == datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    at = datetime(2026, 12, 1, 0, 5, tzinfo=UTC)
    found = due_periods(counted, ["2026-10"], at, LATENESS)
    assert [p.key for p in found.due] == ["2026-11"]
    assert found.next_due == datetime(2027, 1, 1, 0, 5, tzinfo=UTC)


def test_with_nothing_counted_the_next_due_is_the_oldest_period_still_open() -> None:
    # within the lateness, November may still take a count
    found = due_periods([], [], datetime(2026, 12, 1, 0, 1, tzinfo=UTC), LATENESS)
    assert found.due == []
    assert found.next_due == datetime(2026, 12, 1, 0, 5, tzinfo=UTC)


def test_a_statements_month_is_closed_everywhere_twelve_hours_after_its_utc_end() -> None:
    assert closed_everywhere_at("2026-11", LATENESS) == datetime(2026, 12, 1, 12, 5, tzinfo=UTC)
    # the westernmost zone's month ends then
    westernmost = period_of_key("2026-11", ZoneInfo("Etc/GMT+12"))
    assert westernmost.end + LATENESS == closed_everywhere_at("2026-11", LATENESS)

"""Billing periods: calendar months in a time zone, mid-month starts, retention."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from sidecar.domain.period import months_after, parse_period_name, period_at, period_named


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def test_utc_month() -> None:
    p = period_at(utc(2026, 11, 15, 12))
    assert p.name == p.key == "2026-11"
    assert p.start == utc(2026, 11, 1)
    assert p.end == utc(2026, 12, 1)


def test_last_instant_of_the_month_and_first_of_the_next() -> None:
    assert period_at(utc(2026, 11, 30, 23, 59, 59, 999999)).name == "2026-11"
    december = period_at(utc(2026, 12, 1))
    assert december.name == "2026-12"
    assert december.end == utc(2027, 1, 1)


def test_february_of_a_leap_year() -> None:
    p = period_at(utc(2028, 2, 29, 23))
    assert (p.end - p.start).days == 29


def test_month_in_a_time_zone_starts_at_local_midnight() -> None:
    auckland = ZoneInfo("Pacific/Auckland")
    # 30 Nov 12:00 UTC is already 1 Dec 01:00 in Auckland (UTC+13 in summer).
    p = period_at(utc(2026, 11, 30, 12), auckland)
    assert p.name == "2026-12"
    assert p.start == utc(2026, 11, 30, 11)


def test_month_across_a_dst_change_has_its_real_length() -> None:
    new_york = ZoneInfo("America/New_York")
    p = period_at(utc(2026, 3, 15), new_york)
    assert p.start == utc(2026, 3, 1, 5)  # EST
    assert p.end == utc(2026, 4, 1, 4)  # EDT


def test_mid_month_start_begins_a_fresh_period() -> None:
    start = utc(2026, 11, 18, 9, 30)
    before = period_at(utc(2026, 11, 10), starts_at=start)
    after = period_at(utc(2026, 11, 20), starts_at=start)
    assert before.key == "2026-11"
    assert before.end == start  # the month's period ends where the subscription's starts
    assert after.name == "2026-11"
    assert after.key != before.key
    assert after.start == start
    assert after.end == utc(2026, 12, 1)
    assert period_at(utc(2026, 12, 2), starts_at=start).key == "2026-12"


def test_retention_keeps_the_given_number_of_past_periods() -> None:
    p = period_at(utc(2026, 11, 15))
    assert months_after(p, 0) == utc(2026, 12, 1)
    assert months_after(p, 2) == utc(2027, 2, 1)
    assert months_after(p, 14) == utc(2028, 2, 1)


@pytest.mark.parametrize("bad", ["2026-13", "2026-1", "26-11", "2026/11", "nov", "2026-11-01"])
def test_bad_period_names(bad: str) -> None:
    with pytest.raises(ValueError, match="YYYY-MM"):
        parse_period_name(bad)


def test_period_name_parses() -> None:
    assert parse_period_name("2026-02") == (2026, 2)


def test_period_named_follows_zone_and_start() -> None:
    auckland = ZoneInfo("Pacific/Auckland")
    p = period_named("2026-11", auckland)
    assert (p.start, p.end) == (utc(2026, 10, 31, 11), utc(2026, 11, 30, 11))
    start = utc(2026, 11, 18)
    fresh = period_named("2026-11", UTC, start)
    assert (fresh.start, fresh.key) == (start, f"2026-11@{int(start.timestamp())}")
    assert period_named("2026-12", UTC, start).key == "2026-12"

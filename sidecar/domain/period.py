"""Billing periods: the calendar month in a workspace's time zone, from an injected instant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo


@dataclass(frozen=True, slots=True)
class BillingPeriod:
    """One billing period, ``[start, end)``.

    ``name`` is the month it belongs to (``2026-11``). ``key`` identifies it in storage: the
    name for a whole month, the name and the start instant for a period that a subscription
    started in the middle of the month.
    """

    name: str
    key: str
    start: datetime
    end: datetime

    def contains(self, instant: datetime) -> bool:
        """Whether ``instant`` falls inside the period."""
        return self.start <= instant < self.end


def _month_start(year: int, month: int, zone: tzinfo) -> datetime:
    while month > 12:
        year, month = year + 1, month - 12
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, 1, tzinfo=zone).astimezone(UTC)


def month_name(year: int, month: int) -> str:
    """The period name of a calendar month: ``2026-11``."""
    return f"{year:04d}-{month:02d}"


def period_at(
    now: datetime, zone: tzinfo = UTC, starts_at: datetime | None = None
) -> BillingPeriod:
    """The billing period that contains ``now``.

    :param now: an aware instant.
    :param zone: the workspace's time zone; months start at 00:00 local time on the 1st.
    :param starts_at: the subscription's start; when it falls inside the month of ``now``, it
        ends the month's period and starts a fresh one that runs to the month's end.
    :return: the period, its bounds in UTC.
    """
    local = now.astimezone(zone)
    start = _month_start(local.year, local.month, zone)
    end = _month_start(local.year, local.month + 1, zone)
    name = month_name(local.year, local.month)
    if starts_at is not None and start < starts_at < end:
        begin = starts_at.astimezone(UTC)
        if begin <= now:
            return BillingPeriod(name, f"{name}@{int(begin.timestamp())}", begin, end)
        end = begin  # the month's period ends where the subscription's starts
    return BillingPeriod(name, name, start, end)


def months_after(period: BillingPeriod, months: int, zone: tzinfo = UTC) -> datetime:
    """The first instant of the month that starts ``months`` months after ``period`` ends.

    Used for retention: the member set of a period lives until ``months_after(p, n)``, so the
    current period and ``n`` before it stay listable.
    """
    local = period.end.astimezone(zone)
    return _month_start(local.year, local.month + months, zone)


def period_named(name: str, zone: tzinfo = UTC, starts_at: datetime | None = None) -> BillingPeriod:
    """The period called ``name`` (``YYYY-MM``) in ``zone``; when the subscription started
    inside that month, the period from its start.

    :raise ValueError: unless ``name`` is ``YYYY-MM``.
    """
    year, month = parse_period_name(name)
    start = _month_start(year, month, zone)
    end = _month_start(year, month + 1, zone)
    if starts_at is not None and start < starts_at < end:
        return period_at(starts_at, zone, starts_at)
    return BillingPeriod(name, name, start, end)


def parse_period_name(value: str) -> tuple[int, int]:
    """Parse ``YYYY-MM``; raise ``ValueError`` when it is not one."""
    parts = value.split("-")
    if (
        len(parts) != 2
        or len(parts[0]) != 4
        or len(parts[1]) != 2
        or not all(p.isascii() and p.isdigit() for p in parts)
    ):
        raise ValueError("expected YYYY-MM")
    year, month = int(parts[0]), int(parts[1])
    if not 1 <= month <= 12 or year < 1970:
        raise ValueError("expected YYYY-MM")
    return year, month

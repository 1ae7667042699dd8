"""Closed periods and their statements: when a period closes, which of a workspace's counted
periods are due to close, and the final record of one (what a billing system invoices from).

A period closes ``lateness`` after its end: until then an event that occurred in it may still
be counted (occurred_at); from then on nothing changes its count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from sidecar.domain.period import BillingPeriod, period_at, period_named

# The latest local midnight on Earth is UTC-12's: a month has ended in every time zone 12 h
# after it ended in UTC.
WESTERNMOST_OFFSET = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Statement:
    """A workspace's final record of one closed period.

    :param limit: the limit at the period's last admission (the trial's while one ran).
    :param plan: the plan at the period's last admission.
    :param packs: the MAC packs subscribed at the period's last admission.
    :param overage: contacts admitted beyond the limit under the overage allowance.
    :param trial_plan: the plan of a fair-usage trial that ran in the period ("" for none).
    :param trial_ends_at: when that trial ended (or ends); ``None`` for none.
    """

    workspace_id: str
    period: BillingPeriod
    active: int
    limit: int
    plan: str
    packs: int
    overage: int
    trial_plan: str
    trial_ends_at: datetime | None
    closed_at: datetime


def period_of_key(key: str, zone: tzinfo = UTC, starts_at: datetime | None = None) -> BillingPeriod:
    """The period a storage key names (``2026-11``, or ``2026-11@<unix s>`` for the period a
    subscription started inside the month), its bounds in ``zone``. A whole-month key of the
    month the subscription started in ends at that start.

    :raise ValueError: unless ``key`` is such a key.
    """
    name, at, seconds = key.partition("@")
    try:
        whole = period_named(name, zone)
    except ValueError:
        raise ValueError(f"not a period key: {key}") from None
    if at:
        if not seconds.isascii() or not seconds.isdigit():
            raise ValueError(f"not a period key: {key}")
        start = datetime.fromtimestamp(int(seconds), UTC)
        return BillingPeriod(name, key, start, whole.end)
    end = whole.end
    if starts_at is not None and whole.start < starts_at < whole.end:
        end = starts_at.astimezone(UTC)
    return BillingPeriod(name, key, whole.start, end)


def closes_at(period: BillingPeriod, lateness: timedelta) -> datetime:
    """When ``period`` closes: its end plus the lateness."""
    return period.end + lateness


def closed_everywhere_at(name: str, lateness: timedelta) -> datetime:
    """When the month ``name`` has closed in every time zone: its end in the westernmost
    zone (UTC-12), plus the lateness.

    :raise ValueError: unless ``name`` is ``YYYY-MM``.
    """
    return period_named(name, UTC).end + WESTERNMOST_OFFSET + lateness


def is_count_key(field: str) -> bool:
    """Whether a counts-hash field is a period's count (the others are ``<key>:<what>``)."""
    return ":" not in field


@dataclass(frozen=True, slots=True)
class DuePeriods:
    """Which of a workspace's counted periods are due to close at an instant, and the next
    instant another one can be.

    :param due: the periods whose close instant has passed and that are not closed yet.
    :param next_due: the earliest close instant of an open counted period, or of the oldest
        period that can still take a count: nothing is due before it.
    """

    due: list[BillingPeriod]
    next_due: datetime


def due_periods(
    counted: Iterable[str],
    closed: Iterable[str],
    now: datetime,
    lateness: timedelta,
    zone: tzinfo = UTC,
    starts_at: datetime | None = None,
) -> DuePeriods:
    """The counted periods (keys) of a workspace due to close at ``now`` (not in ``closed``),
    oldest first. A key that is no period key is passed over."""
    done = set(closed)
    # the oldest period that may still take a count: the one of an event within the lateness
    oldest_open = period_at(now - lateness, zone, starts_at)
    next_due = closes_at(oldest_open, lateness)
    due: list[BillingPeriod] = []
    for key in counted:
        if key in done:
            continue
        try:
            period = period_of_key(key, zone, starts_at)
        except ValueError:
            continue
        instant = closes_at(period, lateness)
        if instant <= now:
            due.append(period)
        else:
            next_due = min(next_due, instant)
    due.sort(key=lambda p: p.start)
    return DuePeriods(due, next_due)

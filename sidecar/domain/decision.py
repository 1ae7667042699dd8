"""What the service answers: the reason for a decision, the usage it leaves, the decision;
and the few facts around it (the policy without a subscription, events, merges)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import IntEnum

from sidecar.domain.period import BillingPeriod
from sidecar.domain.subscription import FloodGuard


class Reason(IntEnum):
    """Why a contact was allowed or denied; the values are those of ``mac.v1.Reason``, whose
    names carry the prefix ``REASON_``."""

    ALREADY_ACTIVE = 1
    ADMITTED = 2
    WITHIN_LIMIT = 3
    LIMIT_REACHED = 4
    EXEMPT = 5
    TRIAL_STARTED = 6
    BACKEND_UNAVAILABLE = 7
    RATE_LIMITED = 8


# The reasons that deny a contact (unless shadow mode allowed it).
DENYING = frozenset((Reason.LIMIT_REACHED, Reason.RATE_LIMITED))


@dataclass(frozen=True, slots=True)
class Usage:
    """A workspace's usage in one period."""

    period: BillingPeriod
    active: int
    limit: int
    plan: str
    trial_ends_at: datetime | None = None
    # the channels the decision changed, with their new counts
    channels: tuple[tuple[str, int], ...] = ()
    # new contacts admitted beyond the limit under the overage allowance in the period
    overage: int = 0

    @property
    def remaining(self) -> int:
        """How many more new contacts the limit allows, never below zero."""
        return max(self.limit - self.active, 0)


UNSPECIFIED_CHANNEL = "unspecified"
# Elapsed time below which a forecast would only echo noise: the pace is taken over at least
# this much of the period.
FORECAST_MIN_ELAPSED = timedelta(hours=1)


def forecast_active(active: int, period: BillingPeriod, now: datetime) -> int:
    """The period's active contacts projected to its end at its pace so far:
    ``active x period length / elapsed`` (elapsed at least ``FORECAST_MIN_ELAPSED``); the
    count itself once the period is over."""
    if now >= period.end:
        return active
    length = period.end - period.start
    elapsed = min(max(now - period.start, FORECAST_MIN_ELAPSED), length)
    return round(active * (length / elapsed))


@dataclass(frozen=True, slots=True)
class UsageReport:
    """A period's usage as the operators read it: the figures, how they break down by the
    channel contacts were first counted on and by day, the projection of the period's end,
    and the history of past periods (newest first).

    :param recorded: whether anything was recorded of the period (always, for the current
        one); a past period of which nothing was recorded answers zeros.
    :param channels: ``(channel, active)``, most first.
    :param days: ``(YYYY-MM-DD, admitted)`` in the workspace's time zone, oldest first.
    :param closed_at: when the period closed (its count is final); ``None`` while open.
    """

    usage: Usage
    history: list[PeriodCount]
    recorded: bool
    channels: list[tuple[str, int]] = field(default_factory=list)
    days: list[tuple[str, int]] = field(default_factory=list)
    forecast_active: int = 0
    closed_at: datetime | None = None
    flood_guard: FloodGuard | None = None  # the workspace's, now
    last_flood_at: datetime | None = None  # when the last flood was detected


@dataclass(frozen=True, slots=True)
class PeriodCount:
    """A period's count as kept in the history, and the limit at its last admission.

    ``key`` is the period's storage key (``2026-11``, or ``2026-11@<unix s>`` for a period a
    subscription started mid-month).
    """

    key: str
    active: int
    limit: int
    overage: int = 0  # contacts admitted in overage

    @property
    def name(self) -> str:
        """The month the period belongs to (``2026-11``)."""
        return self.key.split("@")[0]


@dataclass(slots=True)
class Decision:
    """The answer for one contact.

    Not frozen: one is built for every contact decided, where a frozen dataclass costs about
    three times as much to construct. Treat it as a value all the same.

    ``usage`` is ``None`` inside a batch (the batch carries one usage for all) and when the
    backend was unavailable. ``from_local_record``: the process's record of contacts counted
    this period answered (``ALREADY_ACTIVE`` or ``EXEMPT``) without the backend: on the warm
    path, or while the backend was unavailable.
    """

    allowed: bool
    reason: Reason
    contact_key: str
    usage: Usage | None
    identity_conflict: bool = False
    shadow_denied: bool = False
    visitor_merged: bool = False
    from_local_record: bool = False
    overage: bool = False  # admitted beyond the limit under the overage allowance


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The decisions of one batch in request order, and the usage after the last one."""

    decisions: list[Decision]
    usage: Usage | None


@dataclass(frozen=True, slots=True)
class Policy:
    """What applies to a workspace without a subscription (its limit, plan and trial), and
    which notifications decisions record; fixed for the life of the process."""

    limit: int
    plan: str
    trial_plan: str
    trial_limit: int
    trial_days: int
    thresholds: tuple[int, ...]
    events_max: int


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded notification.

    A ``PERIOD_CLOSED`` event also carries the period's final plan, packs and overage, and
    the plan and end (unix ms) of a trial that ran in it ("" and 0 for none).
    """

    id: str
    workspace_id: str
    type: str
    period: str
    threshold_percent: int
    active: int
    limit: int
    at_ms: int
    plan: str = ""
    packs: int = 0
    overage: int = 0
    trial_plan: str = ""
    trial_ends_at_ms: int = 0


@dataclass(frozen=True, slots=True)
class Merged:
    """What a merge did: the surviving identity, how many identities it folded into it, how
    many of them are no longer counted in the current period (the count dropped by as many),
    and the count after the merge."""

    survivor: bytes
    folded: int
    uncounted: int
    active: int

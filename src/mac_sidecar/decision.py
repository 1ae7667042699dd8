"""What the service answers: the reason for a decision, the usage it leaves, the decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum

from mac_sidecar.period import BillingPeriod


class Reason(IntEnum):
    """Why a contact was allowed or denied; the values are those of ``mac.v1.Reason``."""

    ALREADY_ACTIVE = 1
    ADMITTED = 2
    WITHIN_LIMIT = 3
    LIMIT_REACHED = 4
    EXEMPT = 5
    TRIAL_STARTED = 6
    BACKEND_UNAVAILABLE = 7


@dataclass(frozen=True, slots=True)
class Usage:
    """A workspace's usage in one period."""

    period: BillingPeriod
    active: int
    limit: int
    plan: str
    trial_ends_at: datetime | None = None

    @property
    def remaining(self) -> int:
        """How many more new contacts the limit allows, never below zero."""
        return max(self.limit - self.active, 0)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer for one contact.

    ``usage`` is ``None`` inside a batch (the batch carries one usage for all) and when the
    backend was unavailable.
    """

    allowed: bool
    reason: Reason
    contact_key: str
    usage: Usage | None
    identity_conflict: bool = False
    shadow_denied: bool = False


@dataclass(frozen=True, slots=True)
class Counted:
    """What the store answered for contacts it decided: the count after the last one, the
    limit it applied, and one reason per contact."""

    active: int
    limit: int
    reasons: list[Reason]


@dataclass(frozen=True, slots=True)
class BatchResult:
    """The decisions of one batch in request order, and the usage after the last one."""

    decisions: list[Decision]
    usage: Usage | None

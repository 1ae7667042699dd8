"""Subscriptions: what an operator sets for a workspace, validated and resolved against the
plan catalog into the plain numbers the admission script reads."""

from __future__ import annotations

import dataclasses
import functools
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.errors import FailedPrecondition, InvalidArgument, quoted

_VERSION = re.compile(r"([0-9]{1,6})(\.[0-9]{1,6}){0,2}([-+][0-9A-Za-z.-]{1,64})?")
_MAX_LIMIT = 10**12
THRESHOLD_MAX = 1000  # percent
THRESHOLDS_MAX = 16  # thresholds per workspace
OVERAGE_PERCENT_MAX = 100
FLOOD_RATE_MAX = 1_000_000  # new contacts per minute
FLOOD_ACTIONS = ("FLAG", "HOLD")


@dataclass(frozen=True, slots=True)
class FloodGuard:
    """The guard against floods of new contacts: past ``new_per_minute`` new contacts in a
    sliding minute, ``FLAG`` admits them and records the flood, ``HOLD`` denies them."""

    new_per_minute: int
    action: str  # FLAG or HOLD


@dataclass(frozen=True, slots=True)
class Subscription:
    """A workspace's subscription as the operator set it."""

    workspace_id: str
    plan: str
    packs: int = 0
    custom_limit: int = 0
    timezone: str = "UTC"
    starts_at: datetime | None = None
    platform_version: str = ""
    shadow_mode: bool = False
    default_region: str = ""
    thresholds: tuple[int, ...] = ()  # () = the service's MAC_THRESHOLDS
    overage_percent: int = 0  # new contacts admitted beyond the limit, percent of it
    flood_guard: FloodGuard | None = None  # None = no guard

    @property
    def major(self) -> str:
        """The platform's major release ("7" for 7.3.0; "0" when unknown)."""
        match = _VERSION.fullmatch(self.platform_version)
        return str(int(match.group(1))) if match else "0"

    @property
    def zone(self) -> ZoneInfo:
        """The time zone of the billing month."""
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A subscription with what the catalog makes of it."""

    subscription: Subscription
    limit: int
    trial_plan: str
    trial_limit: int
    trial_days: int
    is_default: bool = False
    updated_at: datetime | None = None
    trial_ends_at: datetime | None = None
    version: int = 0  # of the stored subscription; 0 for none
    default_thresholds: tuple[int, ...] = ()  # the service's, applied when it has none

    @property
    def thresholds(self) -> tuple[int, ...]:
        """The usage percentages that record an event for this workspace."""
        return self.subscription.thresholds or self.default_thresholds


# The fields of a subscription an operator sets, each with the value clearing it gives.
CHANGEABLE: Mapping[str, Any] = {
    "plan": "",
    "packs": 0,
    "custom_limit": 0,
    "timezone": "UTC",
    "starts_at": None,
    "platform_version": "",
    "shadow_mode": False,
    "default_region": "",
    "thresholds": (),
    "overage_percent": 0,
    "flood_guard": None,
}


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """A change of some fields of a workspace's subscription: ``values`` maps each field of
    ``CHANGEABLE`` to change to its new value (its default clears it); the rest are kept."""

    workspace_id: str
    values: Mapping[str, Any]

    def applied_to(self, current: Subscription | None) -> Subscription:
        """The subscription after the change.

        :raise FailedPrecondition: the workspace has no subscription and no plan is named.
        """
        if current is None:
            if not self.values.get("plan"):
                raise FailedPrecondition(
                    f"workspace {self.workspace_id} has no subscription yet: "
                    "the first change names a plan"
                )
            current = Subscription(self.workspace_id, "")
        return dataclasses.replace(current, **self.values)


@functools.cache
def _tz_names() -> frozenset[str]:
    # The zones of the tz database (tzdata's list), without the entries that are not places:
    # "localtime" is whatever the host is set to (replicas could disagree), "Factory" a
    # placeholder, "posixrules" a template.
    return frozenset(zoneinfo.available_timezones()) - {"localtime", "Factory", "posixrules"}


def validate_timezone(name: str) -> str:
    """Return ``name`` when it is a zone of the IANA tz database; "" means UTC."""
    if not name:
        return "UTC"
    if name not in _tz_names():
        raise InvalidArgument(
            "timezone", f"{quoted(name)} is not an IANA time zone (e.g. Europe/Berlin)"
        )
    return name


def validate_version(version: str) -> str:
    """Return ``version`` when it looks like a release number (7, 7.3, 7.3.0, 7.3.0-rc.1)."""
    if version and not _VERSION.fullmatch(version):
        raise InvalidArgument("platform_version", "must look like 7.3.0")
    return version


def validate_thresholds(values: tuple[int, ...], field: str = "thresholds") -> tuple[int, ...]:
    """Return ``values`` sorted without repeats when each is a percentage from 1 to 1000."""
    if len(values) > THRESHOLDS_MAX:
        raise InvalidArgument(field, f"must be at most {THRESHOLDS_MAX} percentages")
    for value in values:
        if not 1 <= value <= THRESHOLD_MAX:
            raise InvalidArgument(
                field, f"must be percentages from 1 to {THRESHOLD_MAX} (got {value})"
            )
    return tuple(sorted(set(values)))


def validate_overage_percent(percent: int) -> int:
    """Return ``percent`` when it is an overage allowance from 0 to 100 percent."""
    if not 0 <= percent <= OVERAGE_PERCENT_MAX:
        raise InvalidArgument(
            "overage_percent", f"must be 0 to {OVERAGE_PERCENT_MAX} percent (got {percent})"
        )
    return percent


def validate_flood_guard(guard: FloodGuard | None) -> FloodGuard | None:
    """Return ``guard`` when its rate is 1 to 1,000,000 a minute and its action FLAG or HOLD."""
    if guard is None:
        return None
    if not 1 <= guard.new_per_minute <= FLOOD_RATE_MAX:
        raise InvalidArgument(
            "flood_guard.new_per_minute",
            f"must be 1 to {FLOOD_RATE_MAX:,} new contacts a minute (got {guard.new_per_minute})",
        )
    if guard.action not in FLOOD_ACTIONS:
        raise InvalidArgument(
            "flood_guard.action", f"must be FLAG or HOLD (got {quoted(guard.action)})"
        )
    return guard


def resolve(sub: Subscription, catalog: PlanCatalog) -> Resolved:
    """Check ``sub`` against its plan and work out its limits.

    :raise InvalidArgument: an unknown plan, a negative number.
    :raise FailedPrecondition: packs or custom limit outside the plan's bounds.
    """
    plan = catalog.plan(sub.plan)
    plan.check(sub.packs, sub.custom_limit)
    limit = plan.limit(sub.packs, sub.custom_limit)
    if limit > _MAX_LIMIT:
        raise InvalidArgument("custom_limit", f"makes a limit above {_MAX_LIMIT}")
    trial = plan.trial
    return Resolved(
        subscription=sub,
        limit=limit,
        trial_plan=trial.plan if trial else "",
        trial_limit=trial.limit if trial else 0,
        trial_days=trial.days if trial else 0,
    )


def default_subscription(workspace_id: str, catalog: PlanCatalog, default_limit: int) -> Resolved:
    """What applies to a workspace nobody subscribed: the default plan at ``default_limit``."""
    plan = catalog.default
    trial = plan.trial
    return Resolved(
        subscription=Subscription(workspace_id, plan.name),
        limit=default_limit,
        trial_plan=trial.plan if trial else "",
        trial_limit=trial.limit if trial else 0,
        trial_days=trial.days if trial else 0,
        is_default=True,
    )

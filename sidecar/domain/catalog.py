"""The plan catalog: included MACs, MAC packs and fair-usage trials of each plan.

The built-in catalog follows Rocket.Chat's plans; ``MAC_PLAN_CATALOG`` names a JSON file that
replaces it. A subscription is checked against its plan here, and its effective limits are
resolved here once, when it is set, so the admission script reads plain numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.domain.errors import ConfigError, FailedPrecondition, InvalidArgument, quoted

DEFAULT_PACK_SIZE = 3000
DEFAULT_TRIAL_DAYS = 30


@dataclass(frozen=True, slots=True)
class Trial:
    """The fair-usage trial a plan grants once per platform major release."""

    plan: str
    limit: int
    days: int = DEFAULT_TRIAL_DAYS


@dataclass(frozen=True, slots=True)
class Plan:
    """One plan of the catalog.

    :param included: MACs included (the default custom limit when ``custom_limit``).
    :param max_packs: the most MAC packs; ``None`` for no bound.
    :param custom_limit: whether a subscription may set its own base limit (enterprise).
    :param trial: the trial of the next plan, or ``None``.
    """

    name: str
    included: int
    pack_size: int = DEFAULT_PACK_SIZE
    min_packs: int = 0
    max_packs: int | None = 0
    custom_limit: bool = False
    trial: Trial | None = None

    def limit(self, packs: int, custom_limit: int = 0) -> int:
        """The effective limit of a subscription to this plan (outside a trial)."""
        base = custom_limit if self.custom_limit and custom_limit > 0 else self.included
        return base + packs * self.pack_size

    def check(self, packs: int, custom_limit: int) -> None:
        """Raise ``FailedPrecondition`` naming the bound a subscription breaks."""
        if packs < 0:
            raise InvalidArgument("packs", "must not be negative")
        if custom_limit < 0:
            raise InvalidArgument("custom_limit", "must not be negative")
        if self.max_packs is not None and not self.min_packs <= packs <= self.max_packs:
            if self.max_packs == 0:
                raise FailedPrecondition(f"{self.name} allows no MAC packs (got {packs})")
            raise FailedPrecondition(
                f"{self.name} allows {self.min_packs} to {self.max_packs} MAC packs (got {packs})"
            )
        if packs < self.min_packs:
            raise FailedPrecondition(f"{self.name} needs at least {self.min_packs} MAC packs")
        if custom_limit and not self.custom_limit:
            raise FailedPrecondition(f"{self.name} has no custom limit (only enterprise has)")


DEFAULT_PLANS: tuple[Plan, ...] = (
    Plan("starter", included=100, max_packs=0, trial=Trial("pro", 15_000)),
    Plan("pro", included=100, max_packs=5, trial=Trial("enterprise", 50_000)),
    Plan("enterprise", included=100, max_packs=None, custom_limit=True),
)


class PlanCatalog:
    """The plans by name, and the plan of workspaces without a subscription."""

    def __init__(self, plans: tuple[Plan, ...] = DEFAULT_PLANS, default: str = "starter") -> None:
        self.plans = {p.name: p for p in plans}
        if default not in self.plans:
            raise ConfigError(f"the default plan {default!r} is not in the catalog")
        for plan in plans:
            if plan.trial is not None and plan.trial.plan not in self.plans:
                raise ConfigError(f"plan {plan.name}: trial plan {plan.trial.plan!r} is unknown")
        self.default = self.plans[default]

    def plan(self, name: str) -> Plan:
        """The plan called ``name``; ``InvalidArgument`` naming the known plans otherwise."""
        found = self.plans.get(name)
        if found is None:
            known = ", ".join(sorted(self.plans))
            raise InvalidArgument("plan", f"unknown plan {quoted(name)} (known: {known})")
        return found

    @classmethod
    def from_file(cls, path: str, default: str = "starter") -> PlanCatalog:
        """Read a JSON catalog: ``{"plans": [{"name": ..., "included": ..., ...}]}``."""
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"MAC_PLAN_CATALOG: cannot read {path}: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ConfigError(f"MAC_PLAN_CATALOG: {path} is not JSON: {exc}") from exc
        try:
            plans = tuple(_plan(p) for p in data["plans"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"MAC_PLAN_CATALOG: {path}: bad plan entry: {exc}") from exc
        return cls(plans, data.get("default", default))


def _plan(entry: Mapping[str, Any]) -> Plan:
    trial = entry.get("trial")
    return Plan(
        name=str(entry["name"]),
        included=int(entry["included"]),
        pack_size=int(entry.get("pack_size", DEFAULT_PACK_SIZE)),
        min_packs=int(entry.get("min_packs", 0)),
        max_packs=None if entry.get("max_packs", 0) is None else int(entry.get("max_packs", 0)),
        custom_limit=bool(entry.get("custom_limit", False)),
        trial=None
        if trial is None
        else Trial(str(trial["plan"]), int(trial["limit"]), int(trial.get("days", 30))),
    )

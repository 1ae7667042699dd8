"""What applies to workspaces without a subscription, from the settings: the plan catalog and
the policy the decision scripts fall back on."""

from __future__ import annotations

from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.decision import Policy
from sidecar.settings import Settings


def plan_catalog(settings: Settings) -> PlanCatalog:
    """The catalog from ``MAC_PLAN_CATALOG``, or the built-in one."""
    if settings.plan_catalog:
        return PlanCatalog.from_file(settings.plan_catalog, settings.default_plan)
    return PlanCatalog(default=settings.default_plan)


def policy(settings: Settings, catalog: PlanCatalog) -> Policy:
    """What applies to workspaces without a subscription, and the notification settings."""
    trial = catalog.default.trial
    return Policy(
        limit=settings.default_limit,
        plan=catalog.default.name,
        trial_plan=trial.plan if trial else "",
        trial_limit=trial.limit if trial else 0,
        trial_days=trial.days if trial else 0,
        thresholds=tuple(settings.threshold_list()),
        events_max=settings.events_max,
    )

"""Forgetting a person and the links sweep in the process: their stores and settings, and
what they have to say logged. The use cases are ``usecases.forgetting``."""

from __future__ import annotations

from sidecar.domain.clock import Clock
from sidecar.domain.closing_ports import CloseStore
from sidecar.domain.forget_ports import ForgetStore, LinkExpiryStore
from sidecar.logs import get_logger
from sidecar.settings import Settings
from sidecar.usecases.contacts import ContactReader
from sidecar.usecases.enforcer import Enforcer
from sidecar.usecases.forgetting import Forgetting, LinkExpiry
from sidecar.usecases.periods import Periods

log = get_logger("sidecar.server.forgetting")


def _history(workspace_id: str, outcome: str) -> None:
    if outcome == "started":
        log.info("forget: append-only file rewrite started", workspace=workspace_id)
    elif outcome != "off":
        log.warning(
            "forget: the append-only file was not rewritten; it keeps the forgotten keys "
            "until its next rewrite",
            workspace=workspace_id,
            reason=outcome,
        )


def _sweep_failed(error: BaseException) -> None:
    log.warning("the links sweep failed; the next sweep tries again", error=str(error))


def link_expiry(
    settings: Settings, store: LinkExpiryStore, periods: CloseStore, clock: Clock
) -> LinkExpiry:
    """Links of identities not counted for ``MAC_RETENTION_PERIODS`` + 1 periods expire."""
    return LinkExpiry(
        store,
        periods,
        clock,
        retention_periods=settings.retention_periods,
        on_error=_sweep_failed,
    )


def forgetting(
    settings: Settings,
    store: ForgetStore,
    contacts: ContactReader,
    periods: Periods,
    enforcer: Enforcer,
    clock: Clock,
) -> Forgetting:
    """Admin.Forget, its append-only file rewrite logged."""
    return Forgetting(
        store,
        contacts,
        periods,
        enforcer,
        clock,
        retention_periods=settings.retention_periods,
        on_history=_history,
    )

"""Closing periods in the process: the sweep's settings, its owner name and its failures
logged. Closing itself is ``usecases.closing``."""

from __future__ import annotations

from sidecar import metrics
from sidecar.domain.clock import Clock
from sidecar.domain.closing_ports import CloseStore
from sidecar.domain.decision import Policy
from sidecar.logs import get_logger
from sidecar.server.webhooks import consumer_name
from sidecar.settings import Settings
from sidecar.usecases.closing import AfterStep, PeriodClosing

log = get_logger("sidecar.server.closing")


def _failed(error: BaseException) -> None:
    metrics.CLOSE_FAILURES.inc()
    log.warning("closing periods failed; the next sweep tries again", error=str(error))


def period_closing(
    settings: Settings,
    store: CloseStore,
    clock: Clock,
    policy: Policy,
    after_step: AfterStep | None = None,
) -> PeriodClosing:
    """Periods closed ``MAC_LATENESS_SECONDS`` after their end, swept every
    ``MAC_CLOSE_SWEEP_SECONDS`` under a lease named after this process."""
    return PeriodClosing(
        store,
        clock,
        policy,
        lateness_s=settings.lateness_seconds,
        sweep_s=settings.close_sweep_seconds,
        owner=consumer_name(),
        on_error=_failed,
        after_step=after_step,
    )

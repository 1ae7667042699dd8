"""Running one RPC: timed, counted by status and in flight, errors turned into a status."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sidecar import metrics
from sidecar.domain.decision import Decision
from sidecar.transport.status import Context, abort_with

T = TypeVar("T")
M = TypeVar("M")


class MethodMetrics:
    """The labelled metrics of one method, resolved once."""

    def __init__(self, method: str) -> None:
        self.ok = metrics.REQUESTS.labels(method, "OK")
        self.seconds = metrics.REQUEST_SECONDS.labels(method)
        self.in_flight = metrics.IN_FLIGHT.labels(method)
        self.shadowed = metrics.SHADOW_DENIALS.labels(method)
        self.name = method
        self._reasons: dict[int, Any] = {}

    def decided(self, decision: Decision) -> None:
        """Count one decision by its reason, and a shadow denial."""
        counter = self._reasons.get(decision.reason)
        if counter is None:
            counter = self._reasons[decision.reason] = metrics.DECISIONS.labels(
                self.name, decision.reason.name
            )
        counter.inc()
        if decision.shadow_denied:
            self.shadowed.inc()


class UnaryRunner:
    """Runs unary RPCs and hands each result to ``after`` (logs, decision metrics) before
    converting it to its message."""

    def __init__(self) -> None:
        self._metrics: dict[str, MethodMetrics] = {}

    def method(self, method: str) -> MethodMetrics:
        """The metrics of ``method``."""
        found = self._metrics.get(method)
        if found is None:
            found = self._metrics[method] = MethodMetrics(method)
        return found

    def after(self, method: MethodMetrics, workspace: str, result: Any, seconds: float) -> None:
        """Called with every successful result; nothing by default."""

    async def unary(
        self,
        method: str,
        context: Context,
        call: Callable[[], Awaitable[T]],
        to_message: Callable[[T], M],
        workspace: str = "",
    ) -> M:
        """Await ``call``, convert its result with ``to_message``; any error ends the RPC with
        its status (``status_for``)."""
        measured = self.method(method)
        measured.in_flight.inc()
        started = time.perf_counter()
        try:
            result = await call()
            message = to_message(result)
        except Exception as exc:
            measured.seconds.observe(time.perf_counter() - started)
            await abort_with(context, method, exc, workspace)
            raise  # abort raises; this keeps type checkers informed
        finally:
            measured.in_flight.dec()
        seconds = time.perf_counter() - started
        measured.ok.inc()
        measured.seconds.observe(seconds)
        self.after(measured, workspace, result, seconds)
        return message

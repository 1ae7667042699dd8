"""Running one RPC: timed, counted by status and in flight, errors turned into a status."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sidecar import metrics
from sidecar.domain.decision import Decision
from sidecar.domain.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from sidecar.transport.status import Context, abort_with

T = TypeVar("T")
M = TypeVar("M")


class MethodMetrics:
    """The labelled metrics of one method, resolved once."""

    def __init__(self, method: str) -> None:
        self.ok = metrics.REQUESTS.labels(method, "OK")
        self.seconds = metrics.REQUEST_SECONDS.labels(method)
        self.in_flight = metrics.IN_FLIGHT.labels(method)
        self.name = method
        self._reasons: dict[int, Any] = {}
        self._shadowed: Any = None

    def decided(self, decision: Decision) -> None:
        """Count one decision by its reason, and a shadow denial."""
        counter = self._reasons.get(decision.reason)
        if counter is None:
            counter = self._reasons[decision.reason] = metrics.DECISIONS.labels(
                self.name, decision.reason.name
            )
        counter.inc()
        if decision.shadow_denied:
            if self._shadowed is None:
                # made on the first one: methods that cannot deny export no series
                self._shadowed = metrics.SHADOW_DENIALS.labels(self.name)
            self._shadowed.inc()


class Gate:
    """Open while the process takes new calls; closed when it drains for shutdown. Counts the
    calls in progress, so the drain knows when they are done and no more than ``limit`` run at
    once (grpc.aio's own ``maximum_concurrent_rpcs`` has let calls through: grpc/grpc#41531).

    :param limit: calls in progress at most (``MAC_MAX_CONCURRENT_RPCS``).
    """

    def __init__(self, limit: int = 2000) -> None:
        self.closed = False
        self.limit = limit
        self.in_progress = 0
        self.streams = 0
        self.drained = asyncio.Event()

    def enter(self, stream: bool = False) -> None:
        """A call starts. Streams count toward ``limit`` but not toward the drain: they never
        end by themselves, and the server's stop ends them.

        :raise Unavailable: the process is shutting down.
        :raise ResourceExhausted: ``limit`` calls are in progress.
        """
        if self.closed:
            raise Unavailable("the sidecar is shutting down; retry (another replica answers)")
        if self.in_progress + self.streams >= self.limit:
            raise ResourceExhausted(
                f"{self.limit} calls are in progress (MAC_MAX_CONCURRENT_RPCS); retry later"
            )
        if stream:
            self.streams += 1
        else:
            self.in_progress += 1

    def leave(self, stream: bool = False) -> None:
        """A call ends; the last unary call of a closed gate sets ``drained``."""
        if stream:
            self.streams -= 1
            return
        self.in_progress -= 1
        if self.closed and not self.in_progress:
            self.drained.set()

    def close(self) -> None:
        """Refuse new calls from now on; ``drained`` is set once none is in progress."""
        self.closed = True
        if not self.in_progress:
            self.drained.set()


class UnaryRunner:
    """Runs unary RPCs and hands each result to ``after`` (logs, decision metrics) before
    converting it to its message. A call is refused ``UNAVAILABLE`` once the gate closes, and
    ``DEADLINE_EXCEEDED`` when its deadline passed before it started (nothing is sent to
    Redis)."""

    def __init__(self, gate: Gate | None = None) -> None:
        self._metrics: dict[str, MethodMetrics] = {}
        self.gate = gate or Gate()

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
        gate = self.gate
        entered = False
        started = time.perf_counter()
        try:
            gate.enter()
            entered = True
            remaining = context.time_remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceeded("the call's deadline passed before it started")
            result = await call()
            message = to_message(result)
        except Exception as exc:
            measured.seconds.observe(time.perf_counter() - started)
            await abort_with(context, method, exc, workspace)
            raise  # abort raises; this keeps type checkers informed
        finally:
            if entered:
                gate.leave()
            measured.in_flight.dec()
        seconds = time.perf_counter() - started
        measured.ok.inc()
        measured.seconds.observe(seconds)
        self.after(measured, workspace, result, seconds)
        return message

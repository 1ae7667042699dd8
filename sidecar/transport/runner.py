"""Running one RPC, or one message of a stream: timed, counted by status and in flight, errors
turned into a status."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sidecar import metrics
from sidecar.domain.decision import Decision, Reason
from sidecar.domain.errors import DeadlineExceeded, ResourceExhausted, Unavailable
from sidecar.transport.status import Context, abort_with, log

T = TypeVar("T")
M = TypeVar("M")
A = TypeVar("A")


class MethodMetrics:
    """The labelled metrics of one method, resolved once."""

    def __init__(self, method: str) -> None:
        self.ok = metrics.REQUESTS.labels(method, "OK")
        self.seconds = metrics.REQUEST_SECONDS.labels(method)
        self.in_flight = metrics.IN_FLIGHT.labels(method)
        self.name = method
        self._reasons: dict[Reason, Any] = {}
        self._shadowed: Any = None

    def decided(self, decision: Decision) -> None:
        """Count one decision by its reason, and a shadow denial."""
        self._reason(decision.reason).inc()
        if decision.shadow_denied:
            self._shadow().inc()

    def decided_all(self, decisions: list[Decision]) -> int:
        """Count decisions as ``decided`` does, each counter once per reason; return how many
        were denied."""
        if len(decisions) == 1:
            only = decisions[0]
            self.decided(only)
            return 0 if only.allowed else 1
        by_reason: dict[Reason, int] = {}
        shadowed = denied = 0
        for decision in decisions:
            by_reason[decision.reason] = by_reason.get(decision.reason, 0) + 1
            shadowed += decision.shadow_denied
            denied += not decision.allowed
        for reason, count in by_reason.items():
            self._reason(reason).inc(count)
        if shadowed:
            self._shadow().inc(shadowed)
        return denied

    def _reason(self, reason: Reason) -> Any:
        counter = self._reasons.get(reason)
        if counter is None:
            counter = self._reasons[reason] = metrics.DECISIONS.labels(self.name, reason.name)
        return counter

    def _shadow(self) -> Any:
        if self._shadowed is None:
            # made on the first one: methods that cannot deny export no series
            self._shadowed = metrics.SHADOW_DENIALS.labels(self.name)
        return self._shadowed


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
        # called by close(): a stream that ends itself on a drain learns it at once
        self.on_close: set[Callable[[], None]] = set()

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
        for listener in list(self.on_close):
            listener()
        if not self.in_progress:
            self.drained.set()


# A failing warm path fails every call it sees: its error is logged this often at most.
WARM_ERROR_LOG_SECONDS = 60.0


class WarmPathErrors:
    """Counts the warm path's failures in ``mac_warm_path_errors_total`` and logs them with
    the exception, at most once per ``every`` seconds. The call is then decided by Redis.

    :param monotonic: the time source of the rate limit.
    """

    def __init__(
        self,
        every: float = WARM_ERROR_LOG_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._every = every
        self._monotonic = monotonic
        self._next_log = -math.inf
        self._unlogged = 0

    def failed(self, exc: Exception) -> bool:
        """Count ``exc``; log it unless one was logged less than ``every`` seconds ago.

        :return: whether it was logged.
        """
        metrics.WARM_PATH_ERRORS.inc()
        now = self._monotonic()
        if now < self._next_log:
            self._unlogged += 1
            return False
        self._next_log = now + self._every
        log.error(
            "the warm path failed; its calls go to Redis",
            not_logged_before=self._unlogged,
            exc_info=exc,
        )
        self._unlogged = 0
        return True


class UnaryRunner:
    """Runs unary RPCs and hands each result to ``after`` (logs, decision metrics) before
    converting it to its message. A call is refused ``UNAVAILABLE`` once the gate closes, and
    ``DEADLINE_EXCEEDED`` when its deadline passed before it started (nothing is sent to
    Redis)."""

    def __init__(self, gate: Gate | None = None) -> None:
        self._metrics: dict[str, MethodMetrics] = {}
        self.gate = gate or Gate()
        self.warm_errors = WarmPathErrors()

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
        self.settled(measured, workspace, result, started)
        return message

    def settled(self, measured: MethodMetrics, workspace: str, result: Any, started: float) -> None:
        """Count a call (or a stream's message) answered with ``result``, begun at ``started``
        (``time.perf_counter``), and hand it to ``after``."""
        seconds = time.perf_counter() - started
        measured.ok.inc()
        measured.seconds.observe(seconds)
        self.after(measured, workspace, result, seconds)

    def at_once(
        self,
        method: str,
        workspace: str,
        answer: Callable[[str, A], T | None],
        asked: A,
        to_message: Callable[[T], M],
    ) -> M | None:
        """The message of ``answer(workspace, asked)`` when it answers at once (the warm
        path), counted as ``unary`` counts a call; ``None`` when it does not, or the gate is
        closed: then ``unary`` runs the call. Nothing is awaited, so the call is never in
        flight."""
        if self.gate.closed:
            return None
        started = time.perf_counter()
        try:
            result = answer(workspace, asked)
        except Exception as exc:  # counted and logged; the call's own path decides it
            self.warm_errors.failed(exc)
            return None
        if result is None:
            return None
        message = to_message(result)
        self.settled(self.method(method), workspace, result, started)
        return message

"""The load generator: C concurrent unary calls for a fixed time, with per-call latencies."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from bench.procs import cpu_seconds, host_cpu

# One call: given a sequence number, make it and return None, or a description of what was wrong.
Call = Callable[[int], Awaitable[str | None]]


@dataclass
class Result:
    """What one scenario measured, over its measuring window (the warm-up excluded)."""

    name: str
    calls: int
    seconds: float
    contacts_per_call: int
    latencies_ns: list[int]
    errors: int = 0
    first_error: str | None = None
    cpu: dict[str, float] = field(default_factory=dict)  # process name -> share of one core
    steal: float | None = None  # the share of the machine's CPU time its hypervisor took
    # the echo runs beside it (an echo run's include itself), by the echo server's engine
    baselines: dict[str, Result] = field(default_factory=dict, compare=False, repr=False)
    round: int = 1
    server: str = "sidecar"  # what was measured: the sidecar, or an echo server
    engine: str = "grpcio"  # the engine the server was asked to serve with
    served: str = "grpcio"  # the engine it served with, as its threads show

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def server_us_per_call(self) -> float:
        """The server's CPU per call (per message of a stream), in microseconds."""
        if "server" not in self.cpu or not self.calls:
            return float("nan")
        return self.cpu["server"] / self.calls_per_second * 1e6

    def efficiency(self, echo: str) -> float:
        """The ``echo`` engine's echo server's CPU per call over this one's, both measured
        back to back."""
        if echo not in self.baselines:
            return float("nan")
        return self.baselines[echo].server_us_per_call / self.server_us_per_call

    def p99_against(self, echo: str) -> float:
        """This run's p99 over the ``echo`` engine's echo run's."""
        if echo not in self.baselines:
            return float("nan")
        return self.percentile_ms(0.99) / self.baselines[echo].percentile_ms(0.99)

    @property
    def contacts_per_second(self) -> float:
        return self.calls_per_second * self.contacts_per_call

    def percentile_ms(self, share: float) -> float:
        """The latency below which ``share`` of the calls finished (nearest rank), in ms."""
        if not self.latencies_ns:
            return float("nan")
        ordered = sorted(self.latencies_ns)
        rank = max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))
        return ordered[rank] / 1e6


# What CPU is reported for: a process, or processes added up (a sidecar's workers).
Pids = dict[str, int | list[int]]


def _cpu(pids: Pids) -> dict[str, float | None]:
    used: dict[str, float | None] = {}
    for name, pid in pids.items():
        each = [cpu_seconds(p) for p in (pid if isinstance(pid, list) else [pid])]
        used[name] = None if None in each else sum(s for s in each if s is not None)
    return used


async def drive(
    name: str,
    call: Call,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    contacts_per_call: int = 1,
    pids: Pids | None = None,
) -> Result:
    """Keep ``concurrency`` calls in flight for ``warmup + seconds``; measure the last part.

    Calls started during the warm-up are neither timed nor counted. ``pids`` names processes
    whose CPU use over the measuring window is reported.
    """
    sequence = itertools.count()
    latencies: list[int] = []
    errors: list[str] = []
    start = time.perf_counter_ns()
    measure_from = start + int(warmup * 1e9)
    stop_at = measure_from + int(seconds * 1e9)

    async def worker() -> None:
        while (began := time.perf_counter_ns()) < stop_at:
            try:
                problem = await call(next(sequence))
            except grpc.aio.AioRpcError as exc:
                problem = f"{exc.code().name}: {exc.details()}"
            took = time.perf_counter_ns() - began
            if began >= measure_from:
                if problem is None:
                    latencies.append(took)
                else:
                    errors.append(problem)

    async def sample_cpu() -> tuple[dict[str, float | None], tuple[int, int] | None]:
        await asyncio.sleep((measure_from - time.perf_counter_ns()) / 1e9)
        return _cpu(pids or {}), host_cpu()

    sampler = asyncio.create_task(sample_cpu())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    window = (time.perf_counter_ns() - measure_from) / 1e9
    (before, host_before), after, host_after = await sampler, _cpu(pids or {}), host_cpu()
    steal = None
    if host_before and host_after and host_after[1] > host_before[1]:
        steal = (host_after[0] - host_before[0]) / (host_after[1] - host_before[1])
    cpu: dict[str, float] = {}
    for process, used_before in before.items():
        used_after = after[process]
        if used_before is not None and used_after is not None:
            cpu[process] = (used_after - used_before) / window
    return Result(
        name,
        calls=len(latencies),
        seconds=window,
        contacts_per_call=contacts_per_call,
        latencies_ns=latencies,
        errors=len(errors),
        first_error=errors[0] if errors else None,
        cpu=cpu,
        steal=steal,
    )

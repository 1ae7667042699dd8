"""``python -m bench.soak``: one sidecar under full load for minutes, its memory, threads and
open descriptors sampled from ``/proc``, and whether they stayed flat."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict, dataclass

import grpc

from bench import procs
from bench.echo import ENGINES, native_installed, run_loop
from bench.load import Call
from bench.scenarios import (
    ACTIVE_POOL,
    StreamPipe,
    activate_active,
    activate_all,
    activate_batch,
    activate_new,
    check_new,
    progress,
    stream_active,
)
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.redis_servers import RedisServer

SOAK_BATCH = 10  # contacts per ActivateBatch: Redis grows by every new contact
MiB = 1024 * 1024
# Growth per minute over the second half of the run below which a quantity counts as flat:
# the first half lets the bounded records of known contacts and the allocator settle.
FLAT_PER_MINUTE = {"rss_mib": 0.5, "threads": 0.2, "fds": 0.2}


@dataclass(frozen=True)
class Sample:
    """One interval of the soak: the load's figures over it, the sidecar's footprint at its end."""

    seconds: float  # since the load began
    calls_per_second: float
    errors: int
    p50_ms: float
    p99_ms: float
    server_us_per_call: float
    rss_mib: float
    threads: int
    fds: int


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0, help="minutes under load")
    parser.add_argument(
        "--engine",
        choices=sorted(ENGINES),
        default="native",
        help="the sidecar's engine, MAC_GRPC_ENGINE (default native)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ns = parser.parse_args(argv)
    if ns.minutes <= 0 or ns.concurrency < 1 or ns.interval <= 0:
        parser.error("--minutes, --concurrency and --interval must be > 0")
    if ns.engine == "native" and not native_installed():
        parser.error("--engine native needs pygrpc_native installed (the native extra)")
    return ns


def mix(stub: pb_grpc.EnforcerStub, pipe: StreamPipe) -> list[tuple[str, Call, int]]:
    """The load's calls and their shares (of 16): mostly contacts already active, as in
    production, with new ones, checks and batches; each numbers its own contacts."""
    return [
        ("Activate, already active", activate_active(stub), 6),
        ("ActivateStream, already active", stream_active(pipe), 2),
        ("Check, new contact", check_new(stub), 4),
        ("Activate, new contact", activate_new(stub, "soak-new"), 3),
        (f"ActivateBatch x{SOAK_BATCH}, new", activate_batch(stub, "soak-batch", SOAK_BATCH), 1),
    ]


def mixed(calls: list[tuple[str, Call, int]]) -> Call:
    """One call that is each of ``calls`` in turn, as often as its share says; each numbers
    its contacts from 0."""
    numbered = [(call, itertools.count()) for _, call, _ in calls]
    turns = [numbered[k] for k, (_, _, share) in enumerate(calls) for _ in range(share)]

    async def call(i: int) -> str | None:
        each, numbers = turns[i % len(turns)]
        return await each(next(numbers))

    return call


def _percentile_ms(ordered: list[int], share: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered)) - 1))] / 1e6


async def soak(
    call: Call,
    pid: int,
    *,
    minutes: float,
    concurrency: int,
    interval: float,
    show: Callable[[str], None],
) -> list[Sample]:
    """Keep ``concurrency`` calls in flight for ``minutes``; every ``interval`` seconds, one
    sample of the interval's calls and of process ``pid``'s footprint, each ``show``n as it
    comes."""
    sequence = itertools.count()
    latencies: list[int] = []
    errors: list[str] = []  # of the current interval
    first_error: list[str] = []
    start = time.monotonic()
    stop_at = start + minutes * 60

    gone = asyncio.Event()  # the sidecar died: the load stops early

    async def worker() -> None:
        while time.monotonic() < stop_at and not gone.is_set():
            began = time.perf_counter_ns()
            try:
                problem = await call(next(sequence))
            except grpc.aio.AioRpcError as exc:
                problem = f"{exc.code().name}: {exc.details()}"
            if problem is None:
                latencies.append(time.perf_counter_ns() - began)
            else:
                errors.append(problem)

    async def sample_each_interval() -> list[Sample]:
        samples: list[Sample] = []
        cpu_before, at = procs.cpu_seconds(pid), time.monotonic()
        while at < stop_at:
            await asyncio.sleep(min(interval, stop_at - at))
            now, cpu_now = time.monotonic(), procs.cpu_seconds(pid)
            taken, latencies[:] = sorted(latencies), []
            failed = len(errors)
            first_error[:], errors[:] = (first_error or errors)[:1], []
            footprint = procs.footprint(pid)
            if footprint is None:
                gone.set()
                raise RuntimeError(f"the sidecar (pid {pid}) is gone")
            cpu = (cpu_now or 0.0) - (cpu_before or 0.0)
            sample = Sample(
                seconds=round(now - start, 1),
                calls_per_second=len(taken) / (now - at),
                errors=failed,
                p50_ms=_percentile_ms(taken, 0.50),
                p99_ms=_percentile_ms(taken, 0.99),
                server_us_per_call=cpu / len(taken) * 1e6 if taken else float("nan"),
                rss_mib=footprint.rss_bytes / MiB,
                threads=footprint.threads,
                fds=footprint.fds,
            )
            samples.append(sample)
            show(_row(sample))
            cpu_before, at = cpu_now, now
        return samples

    show(HEAD)
    sampler = asyncio.create_task(sample_each_interval())
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    samples = await sampler
    if first_error:
        show(f"! first failed call: {first_error[0]}")
    return samples


HEAD = (
    f"{'time':>6}  {'calls/s':>8}  {'errors':>6}  {'p50 ms':>7}  {'p99 ms':>7}  "
    f"{'µs/call':>7}  {'rss MiB':>8}  {'threads':>7}  {'fds':>5}"
)


def _row(s: Sample) -> str:
    minutes, seconds = divmod(int(s.seconds), 60)
    return (
        f"{minutes:>3}:{seconds:02}  {s.calls_per_second:>8,.0f}  {s.errors:>6}  "
        f"{s.p50_ms:>7.2f}  {s.p99_ms:>7.2f}  {s.server_us_per_call:>7.0f}  "
        f"{s.rss_mib:>8.1f}  {s.threads:>7}  {s.fds:>5}"
    )


def slope_per_minute(points: list[tuple[float, float]]) -> float:
    """The least-squares slope of (seconds, value) points, per minute (0 for fewer than 2)."""
    if len(points) < 2:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    if spread == 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / spread * 60


def verdict(samples: list[Sample]) -> dict[str, dict[str, float | bool]]:
    """For RSS, threads and descriptors: first and last value, the growth per minute over
    the second half of the samples, and whether that is flat (``FLAT_PER_MINUTE``)."""
    settled = samples[len(samples) // 2 :]
    report: dict[str, dict[str, float | bool]] = {}
    for quantity, limit in FLAT_PER_MINUTE.items():
        growth = slope_per_minute([(s.seconds, float(getattr(s, quantity))) for s in settled])
        report[quantity] = {
            "first": float(getattr(samples[0], quantity)),
            "last": float(getattr(samples[-1], quantity)),
            "min": float(min(getattr(s, quantity) for s in samples)),
            "max": float(max(getattr(s, quantity) for s in samples)),
            "growth_per_minute": round(growth, 3),
            "flat": growth < limit,
        }
    return report


def summary(ns: argparse.Namespace, served: str, samples: list[Sample]) -> str:
    """The soak's outcome in a few lines: the load, then a verdict for each quantity."""
    calls = sum(s.calls_per_second for s in samples) / len(samples)
    errors = sum(s.errors for s in samples)
    lines = [
        f"Soak: the sidecar on {served} (asked {ns.engine}), {ns.concurrency} calls in flight "
        f"for {ns.minutes:g} min, {calls:,.0f} calls/s on average, {errors} failed calls, "
        f"{len(samples)} samples",
    ]
    units = {"rss_mib": "MiB", "threads": "threads", "fds": "descriptors"}
    for quantity, figures in verdict(samples).items():
        state = "flat" if figures["flat"] else "GROWING"
        lines.append(
            f"{quantity:>8}: {figures['first']:.1f} -> {figures['last']:.1f} {units[quantity]} "
            f"(range {figures['min']:.1f} to {figures['max']:.1f}); "
            f"{figures['growth_per_minute']:+.2f} per minute over the second half: {state}"
        )
    return "\n".join(lines)


def _print(line: str) -> None:
    print(line, flush=True)


async def run(ns: argparse.Namespace, sidecar: procs.Server) -> list[Sample]:
    async with grpc.aio.insecure_channel(sidecar.addr) as channel:
        stub = pb_grpc.EnforcerStub(channel)
        progress(f"activating a pool of {ACTIVE_POOL:,} contacts already active")
        await activate_all(stub, "bench-active", ACTIVE_POOL)
        pipe = StreamPipe(stub.ActivateStream())
        try:
            return await soak(
                mixed(mix(stub, pipe)),
                sidecar.proc.pid,
                minutes=ns.minutes,
                concurrency=ns.concurrency,
                interval=ns.interval,
                show=progress if ns.json else _print,
            )
        finally:
            await pipe.close()


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    with ExitStack() as stack:
        try:
            redis = RedisServer()
            stack.callback(redis.close)
            redis.start()
            sidecar = procs.start_sidecar(redis.url, ns.engine)
            stack.callback(sidecar.close)
            progress(f"{sidecar.name} (pid {sidecar.proc.pid}) serves with {sidecar.served}")
            samples = run_loop(run(ns, sidecar))
            status = sidecar.stop()
            if status != 0:
                progress(f"! the {sidecar.name} exited with status {status}")
        except KeyboardInterrupt:
            progress("interrupted; stopping the servers")
            return 130
    if ns.json:
        report = {
            "config": {**vars(ns), "served": sidecar.served},
            "samples": [
                {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
                for row in map(asdict, samples)
            ],
            "verdict": verdict(samples),
        }
        print(json.dumps(report, indent=2))
    else:
        print("\n" + summary(ns, sidecar.served, samples))
    return 0


if __name__ == "__main__":
    sys.exit(main())

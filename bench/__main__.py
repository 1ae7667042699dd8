"""``python -m bench``: the sidecar's throughput, latency and Redis memory beside a bare echo."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from contextlib import ExitStack

import grpc

from bench import procs
from bench.echo import run_loop
from bench.load import Pids, Result
from bench.scenarios import echo_call, memory_per_contact, progress, run_scenarios
from bench.topologies import run_topologies
from bench.workers import run_workers, scaling
from tests.support.redis_servers import RedisServer

MEMORY_GOAL = 64.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument(
        "--memory-contacts", type=int, default=100_000, help="contacts counted to measure memory"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--no-cluster",
        dest="cluster",
        action="store_false",
        help="skip the scenarios on a local Redis Cluster (with and without WAIT)",
    )
    parser.add_argument(
        "--workers",
        default="1,2",
        help="worker counts the batch scaling runs use, comma separated (default 1,2)",
    )
    ns = parser.parse_args(argv)
    try:
        ns.workers = sorted({int(n) for n in ns.workers.split(",")})
    except ValueError:
        parser.error("--workers takes worker counts, comma separated (1,2,4)")
    if not ns.workers or ns.workers[0] < 1:
        parser.error("--workers takes worker counts of 1 or more")
    if ns.seconds <= 0 or ns.warmup < 0 or ns.concurrency < 1 or ns.memory_contacts < 1:
        parser.error("--seconds, --concurrency, --memory-contacts must be > 0; --warmup >= 0")
    return ns


async def measure(
    ns: argparse.Namespace,
    echo_addr: str,
    sidecar_addr: str,
    redis: RedisServer,
    pids: Pids,
    socket: str = "",
) -> tuple[list[Result], dict[str, float]]:
    """Run every scenario, then the memory measurement, from this (the client) process;
    ``socket`` is the sidecar's Unix domain socket."""
    async with (
        grpc.aio.insecure_channel(echo_addr) as echo,
        grpc.aio.insecure_channel(sidecar_addr) as sidecar,
        grpc.aio.insecure_channel(f"unix:{socket}") as uds,
    ):
        results = await run_scenarios(
            echo,
            sidecar,
            concurrency=ns.concurrency,
            warmup=ns.warmup,
            seconds=ns.seconds,
            pids=pids,
            uds=uds if socket else None,
        )
        client = redis.client()
        try:
            memory = await memory_per_contact(sidecar, client, ns.memory_contacts)
        finally:
            client.close()
        results += await run_workers(
            redis.url,
            echo_call(echo),
            concurrency=ns.concurrency,
            warmup=ns.warmup,
            seconds=ns.seconds,
            pids=pids,
            workers=ns.workers,
        )
        if ns.cluster:
            results += await run_topologies(
                echo_call(echo),
                concurrency=ns.concurrency,
                warmup=ns.warmup,
                seconds=ns.seconds,
                pids=pids,
            )
    return results, memory


def _us(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def table(ns: argparse.Namespace, results: list[Result], memory: dict[str, float]) -> str:
    """The results as an aligned text table, with the memory line below."""
    head = ["scenario", "round", "calls/s", "contacts/s", "p50 ms", "p99 ms", "p99 vs echo"]
    head += ["server µs/call", "echo µs/call", "efficiency", "cpu redis", "steal"]
    rows = [head]
    for r in results:
        echo = r.baseline
        rows.append(
            [
                r.name,
                str(r.round),
                f"{r.calls_per_second:,.0f}",
                f"{r.contacts_per_second:,.0f}",
                _ms(r.percentile_ms(0.50)),
                _ms(r.percentile_ms(0.99)),
                f"{r.percentile_ms(0.99) / echo.percentile_ms(0.99):.2f}x" if echo else "-",
                _us(r.server_us_per_call),
                _us(echo.server_us_per_call) if echo else "-",
                f"{r.efficiency:.2f}x" if echo else "-",
                f"{r.cpu['redis']:.0%}" if "redis" in r.cpu else "-",
                f"{r.steal:.0%}" if r.steal is not None else "-",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        f"{ns.concurrency} calls in flight, {ns.seconds:g} s measured per run after "
        f"{ns.warmup:g} s warm-up; {os.cpu_count()} CPUs. Each scenario runs right after an "
        "echo run; efficiency = echo's server CPU per call / the sidecar's (per message for "
        "the stream); cpu redis = share of one core; steal = share of the machine's CPU time "
        "its hypervisor gave to others during the run (high steal makes figures noisy)",
        "",
    ]
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    for r in results:
        if r.errors:
            lines.append(f"! {r.name}: {r.errors} failed calls, first: {r.first_error}")
    grown = scaling(results)
    if grown:
        lines += ["", grown]
    per_contact = memory["bytes_per_contact"]
    verdict = "met" if per_contact <= MEMORY_GOAL else "MISSED"
    lines += [
        "",
        f"Redis memory per counted contact: {per_contact:.1f} bytes "
        f"(goal <= {MEMORY_GOAL:g}: {verdict}); used_memory grew "
        f"{memory['used_memory_delta']:,.0f} bytes for {memory['contacts']:,.0f} contacts, "
        f"the members set holds {memory['set_bytes_per_contact']:.1f} bytes per contact",
    ]
    return "\n".join(lines)


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def as_json(ns: argparse.Namespace, results: list[Result], memory: dict[str, float]) -> str:
    scenarios = [
        {
            "name": r.name,
            "calls": r.calls,
            "seconds": round(r.seconds, 3),
            "calls_per_second": round(r.calls_per_second, 1),
            "contacts_per_second": round(r.contacts_per_second, 1),
            "p50_ms": round(r.percentile_ms(0.50), 3),
            "p99_ms": round(r.percentile_ms(0.99), 3),
            "round": r.round,
            "server_us_per_call": _rounded(r.server_us_per_call),
            "echo_server_us_per_call": _rounded(r.baseline.server_us_per_call)
            if r.baseline
            else None,
            "efficiency": _rounded(r.efficiency),
            "cpu": {k: round(v, 3) for k, v in r.cpu.items()},
            "steal": _rounded(r.steal) if r.steal is not None else None,
            "errors": r.errors,
            "first_error": r.first_error,
        }
        for r in results
    ]
    config = {"concurrency": ns.concurrency, "seconds": ns.seconds, "warmup": ns.warmup}
    report = {
        "config": config,
        "scenarios": scenarios,
        "memory": {**memory, "goal_bytes_per_contact": MEMORY_GOAL},
    }
    return json.dumps(report, indent=2)


def _sidecar_log(sidecar: procs.Server) -> None:
    """After the run, or on failure: what the sidecar logged (at warning and above)."""
    logged = sidecar.log().splitlines()
    if logged:
        progress(f"! the sidecar logged {len(logged)} lines; the last ones:")
        progress("\n".join(logged[-20:]))


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    with ExitStack() as stack:
        try:
            redis = RedisServer()
            stack.callback(redis.close)
            redis.start()
            socket = procs.socket_path()
            sidecar = procs.start_sidecar(redis.url, MAC_GRPC_UDS=socket)
            stack.callback(sidecar.close)
            stack.callback(_sidecar_log, sidecar)
            echo = procs.start_echo()
            stack.callback(echo.close)
            with redis.client() as client:
                redis_pid = int(client.info("server")["process_id"])
            pids: Pids = {
                "sidecar": sidecar.proc.pid,
                "echo": echo.proc.pid,
                "redis": redis_pid,
                "client": os.getpid(),
            }
            results, memory = run_loop(measure(ns, echo.addr, sidecar.addr, redis, pids, socket))
            status = sidecar.stop()  # SIGTERM: a graceful stop should exit with 0
            if status != 0:
                progress(f"! the sidecar exited with status {status}")
        except KeyboardInterrupt:
            progress("interrupted; stopping the servers")
            return 130
    print(as_json(ns, results, memory) if ns.json else table(ns, results, memory))
    return 0


if __name__ == "__main__":
    sys.exit(main())

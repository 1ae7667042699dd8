"""``python -m bench``: the sidecar's throughput, latency and Redis memory on each engine,
beside bare echo servers on each."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from contextlib import AsyncExitStack, ExitStack

import grpc

from bench import procs
from bench.closing import measure_sweep
from bench.echo import ENGINES, native_installed, run_loop
from bench.load import Pids, Result
from bench.report import as_json, table
from bench.scenarios import echo_call, memory_per_contact, progress, run_scenarios
from bench.topologies import run_topologies
from bench.workers import run_workers
from tests.support.redis_servers import RedisServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before")
    parser.add_argument("--concurrency", type=int, default=32, help="calls in flight")
    parser.add_argument(
        "--memory-contacts", type=int, default=100_000, help="contacts counted to measure memory"
    )
    parser.add_argument(
        "--sweep-workspaces",
        type=int,
        default=10_000,
        help="workspaces the closing sweep is measured over (0: skip it)",
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
    parser.add_argument(
        "--engines",
        default=",".join(available_engines()),
        help="the sidecar's engines (MAC_GRPC_ENGINE) each scenario runs on, comma separated "
        f"(default {','.join(available_engines())}: grpcio, and native when pygrpc_native "
        "is installed)",
    )
    ns = parser.parse_args(argv)
    try:
        ns.workers = sorted({int(n) for n in ns.workers.split(",")})
    except ValueError:
        parser.error("--workers takes worker counts, comma separated (1,2,4)")
    if not ns.workers or ns.workers[0] < 1:
        parser.error("--workers takes worker counts of 1 or more")
    if ns.sweep_workspaces < 0:
        parser.error("--sweep-workspaces must be >= 0")
    if ns.seconds <= 0 or ns.warmup < 0 or ns.concurrency < 1 or ns.memory_contacts < 1:
        parser.error("--seconds, --concurrency, --memory-contacts must be > 0; --warmup >= 0")
    ns.engines = list(dict.fromkeys(e.strip() for e in ns.engines.split(",") if e.strip()))
    unknown = [e for e in ns.engines if e not in ENGINES]
    if not ns.engines or unknown:
        parser.error(f"--engines takes {' and '.join(ENGINES)}, comma separated")
    if "native" in ns.engines and not native_installed():
        parser.error("--engines native needs pygrpc_native installed (the native extra)")
    return ns


def available_engines() -> list[str]:
    """grpcio, and native when pygrpc_native is installed: the echo servers every scenario
    runs beside, and the sidecar's engines unless ``--engines`` says otherwise."""
    return ["grpcio", "native"] if native_installed() else ["grpcio"]


async def measure(
    ns: argparse.Namespace,
    echoes: dict[str, procs.Server],
    sidecars: dict[str, procs.Server],
    redis: RedisServer,
    pids: Pids,
    sockets: dict[str, str],
) -> tuple[list[Result], dict[str, float]]:
    """Run every scenario, then the memory measurement, from this (the client) process;
    ``sockets`` are the sidecars' Unix domain sockets, by engine."""
    async with AsyncExitStack() as stack:

        async def channel(target: str) -> grpc.aio.Channel:
            return await stack.enter_async_context(grpc.aio.insecure_channel(target))

        echo_channels = {e: await channel(server.addr) for e, server in echoes.items()}
        sidecar_channels = {e: await channel(server.addr) for e, server in sidecars.items()}
        uds = {e: await channel(f"unix:{path}") for e, path in sockets.items()}
        served = {e: server.served for e, server in sidecars.items()}
        results = await run_scenarios(
            echo_channels,
            sidecar_channels,
            concurrency=ns.concurrency,
            warmup=ns.warmup,
            seconds=ns.seconds,
            pids=pids,
            served=served,
            uds=uds,
        )
        client = redis.client()
        try:
            memory = await memory_per_contact(
                next(iter(sidecar_channels.values())), client, ns.memory_contacts
            )
        finally:
            client.close()
        echo_calls = {e: echo_call(c) for e, c in echo_channels.items()}
        results += await run_workers(
            redis.url,
            echo_calls,
            engines=ns.engines,
            concurrency=ns.concurrency,
            warmup=ns.warmup,
            seconds=ns.seconds,
            pids=pids,
            workers=ns.workers,
        )
        if ns.cluster:
            results += await run_topologies(
                echo_calls,
                engines=ns.engines,
                concurrency=ns.concurrency,
                warmup=ns.warmup,
                seconds=ns.seconds,
                pids=pids,
            )
    return results, memory


def _sidecar_log(sidecar: procs.Server) -> None:
    """After the run, or on failure: what the sidecar logged (at warning and above)."""
    logged = sidecar.log().splitlines()
    if logged:
        progress(f"! the {sidecar.name} logged {len(logged)} lines; the last ones:")
        progress("\n".join(logged[-20:]))


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    with ExitStack() as stack:
        try:
            redis = RedisServer()
            stack.callback(redis.close)
            redis.start()
            with redis.client() as client:
                redis_pid = int(client.info("server")["process_id"])
            pids: Pids = {"redis": redis_pid, "client": os.getpid()}
            sidecars, sockets = {}, {}
            for engine in ns.engines:
                sockets[engine] = procs.socket_path()
                stack.callback(shutil.rmtree, os.path.dirname(sockets[engine]), True)
                sidecar = procs.start_sidecar(redis.url, engine, MAC_GRPC_UDS=sockets[engine])
                stack.callback(sidecar.close)
                stack.callback(_sidecar_log, sidecar)
                progress(f"{sidecar.name} serves with {sidecar.served}")
                sidecars[engine] = sidecar
                pids[f"sidecar {engine}"] = sidecar.proc.pid
            echoes = {}
            for engine in available_engines():
                echoes[engine] = procs.start_echo(engine)
                stack.callback(echoes[engine].close)
                pids[f"echo {engine}"] = echoes[engine].proc.pid
            results, memory = run_loop(measure(ns, echoes, sidecars, redis, pids, sockets))
            sweep = run_loop(measure_sweep(ns.sweep_workspaces)) if ns.sweep_workspaces else None
            for sidecar in sidecars.values():
                status = sidecar.stop()  # SIGTERM: a graceful stop should exit with 0
                if status != 0:
                    progress(f"! the {sidecar.name} exited with status {status}")
        except KeyboardInterrupt:
            progress("interrupted; stopping the servers")
            return 130
    print(as_json(ns, results, memory, sweep) if ns.json else table(ns, results, memory, sweep))
    return 0


if __name__ == "__main__":
    sys.exit(main())

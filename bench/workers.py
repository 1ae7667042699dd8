"""Worker scaling: ``ActivateBatch`` against a sidecar of one process, then of more
(``--workers N``), on each engine, each measured beside the echo runs. The load is spread
over several connections: the kernel hands each connection to one worker (``SO_REUSEPORT``),
so one connection would reach one."""

from __future__ import annotations

import os
import time
from contextlib import AsyncExitStack, ExitStack

import grpc

from bench import procs
from bench.load import Call, Pids, Result
from bench.scenarios import BATCH, activate_batch, drive_beside_echoes, progress
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc

CONNECTIONS = 8
# separate connections: grpc would otherwise share one between channels to one address
_OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def spread(calls: list[Call]) -> Call:
    """Each call made by the next of ``calls`` in turn."""

    async def call(i: int) -> str | None:
        return await calls[i % len(calls)](i)

    return call


def worker_pids(sidecar: procs.Server, workers: int) -> list[int]:
    """The sidecar's serving processes once all ``workers`` run: the process itself, or its
    supervisor and workers."""
    if workers == 1:
        return [sidecar.proc.pid]
    deadline = time.monotonic() + procs.START_SECONDS
    while len(found := procs.children(sidecar.proc.pid)) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(found)} of {workers} workers started")
        time.sleep(0.05)
    return [sidecar.proc.pid, *found]


async def run_workers(
    redis_url: str,
    echoes: dict[str, Call],
    *,
    engines: list[str],
    concurrency: int,
    warmup: float,
    seconds: float,
    pids: Pids,
    workers: list[int],
) -> list[Result]:
    """``ActivateBatch`` of new contacts against a sidecar of each number of ``workers`` on
    each of ``engines``; ``echoes`` are the echo calls by engine."""
    results: list[Result] = []
    for count in workers:
        progress(f"starting a sidecar of {count} worker process(es) on each engine")
        with ExitStack() as sidecars:
            calls: dict[str, Call] = {}
            serving: Pids = {}
            served: dict[str, str] = {}
            async with AsyncExitStack() as channels:
                for engine in engines:
                    sidecar = procs.start_sidecar(redis_url, engine, MAC_WORKERS=str(count))
                    sidecars.callback(sidecar.close)
                    pids_of = worker_pids(sidecar, count)
                    serving[f"sidecar {engine}"] = pids_of
                    served[engine] = procs.serving_engine(pids_of)
                    stubs = []
                    for _ in range(CONNECTIONS):
                        channel = grpc.aio.insecure_channel(sidecar.addr, options=_OWN_CONNECTION)
                        channels.push_async_callback(channel.close)
                        stubs.append(pb_grpc.EnforcerStub(channel))
                    workspace = f"bench-workers-{count}-{engine}"
                    calls[engine] = spread([activate_batch(stub, workspace) for stub in stubs])
                results += await drive_beside_echoes(
                    f"[workers {count}] ActivateBatch x{BATCH}, new",
                    calls,
                    echoes,
                    concurrency=concurrency,
                    warmup=warmup,
                    seconds=seconds,
                    contacts_per_call=BATCH,
                    pids={**pids, **serving},
                    round_=1,
                    served=served,
                )
    return results


def scaling(results: list[Result]) -> list[str]:
    """The lines saying how throughput grew with the workers, one per engine (none without
    those runs)."""
    lines = []
    for engine in dict.fromkeys(r.engine for r in results):
        runs = {
            int(r.name[9 : r.name.index("]")]): r
            for r in results
            if r.name.startswith("[workers ") and r.engine == engine and r.server == "sidecar"
        }
        if 1 not in runs or len(runs) < 2:
            continue
        one = runs[1].contacts_per_second
        grown = ", ".join(
            f"{n} workers {run.contacts_per_second / one:.2f}x"
            for n, run in sorted(runs.items())
            if n > 1
        )
        lines.append(
            f"Worker scaling on {engine} (ActivateBatch contacts/s against one process, "
            f"{one:,.0f}): {grown}; on {os.cpu_count()} cores shared with the load client "
            "and Redis"
        )
    return lines

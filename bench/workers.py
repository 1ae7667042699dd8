"""Worker scaling: ``ActivateBatch`` against a sidecar of one process, then of more
(``--workers N``), each measured beside an echo run. The load is spread over several
connections: the kernel hands each connection to one worker (``SO_REUSEPORT``), so one
connection would reach one."""

from __future__ import annotations

import asyncio
import os
import time

import grpc

from bench import procs
from bench.load import Call, Pids, Result
from bench.scenarios import BATCH, activate_batch, drive_beside_echo, progress
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
    echo: Call,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    pids: Pids,
    workers: list[int],
) -> list[Result]:
    """``ActivateBatch`` of new contacts against a sidecar of each number of ``workers``."""
    results: list[Result] = []
    for count in workers:
        progress(f"starting a sidecar of {count} worker process(es)")
        sidecar = procs.start_sidecar(redis_url, MAC_WORKERS=str(count))
        try:
            serving = worker_pids(sidecar, count)
            channels = [
                grpc.aio.insecure_channel(sidecar.addr, options=_OWN_CONNECTION)
                for _ in range(CONNECTIONS)
            ]
            try:
                workspace = f"bench-workers-{count}"
                calls = [activate_batch(pb_grpc.EnforcerStub(c), workspace) for c in channels]
                results.append(
                    await drive_beside_echo(
                        f"[workers {count}] ActivateBatch x{BATCH}, new",
                        spread(calls),
                        echo,
                        concurrency=concurrency,
                        warmup=warmup,
                        seconds=seconds,
                        contacts_per_call=BATCH,
                        pids={**pids, "sidecar": serving},
                        round_=1,
                    )
                )
            finally:
                await asyncio.gather(*(c.close() for c in channels))
        finally:
            sidecar.close()
    return results


def scaling(results: list[Result]) -> str | None:
    """The line saying how throughput grew with the workers, or None without those runs."""
    runs = {
        int(r.name[9 : r.name.index("]")]): r for r in results if r.name.startswith("[workers ")
    }
    if 1 not in runs or len(runs) < 2:
        return None
    one = runs[1].contacts_per_second
    grown = ", ".join(
        f"{n} workers {run.contacts_per_second / one:.2f}x"
        for n, run in sorted(runs.items())
        if n > 1
    )
    return (
        f"Worker scaling (ActivateBatch contacts/s against one process, {one:,.0f}): {grown}; "
        f"on {os.cpu_count()} cores shared with the load client and Redis"
    )

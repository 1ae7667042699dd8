"""Worker scaling: ``ActivateBatch`` against one sidecar process, then against ``--workers 2``,
each measured beside an echo run. The load is spread over several connections: the kernel
hands each connection to one worker (``SO_REUSEPORT``), so one connection would reach one."""

from __future__ import annotations

import asyncio
import time

import grpc

from bench import procs
from bench.load import Call, Pids, Result
from bench.scenarios import BATCH, activate_batch, drive_beside_echo, progress
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc

CONNECTIONS = 8
WORKERS = (1, 2)
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
) -> list[Result]:
    """``ActivateBatch`` of new contacts against a sidecar of each of ``WORKERS`` processes."""
    results: list[Result] = []
    for workers in WORKERS:
        progress(f"starting a sidecar of {workers} worker process(es)")
        sidecar = procs.start_sidecar(redis_url, MAC_WORKERS=str(workers))
        try:
            serving = worker_pids(sidecar, workers)
            channels = [
                grpc.aio.insecure_channel(sidecar.addr, options=_OWN_CONNECTION)
                for _ in range(CONNECTIONS)
            ]
            try:
                workspace = f"bench-workers-{workers}"
                calls = [activate_batch(pb_grpc.EnforcerStub(c), workspace) for c in channels]
                results.append(
                    await drive_beside_echo(
                        f"[workers {workers}] ActivateBatch x{BATCH}, new",
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
    runs = {r.name.split("]")[0] + "]": r for r in results if r.name.startswith("[workers ")}
    one, two = runs.get("[workers 1]"), runs.get("[workers 2]")
    if one is None or two is None:
        return None
    grown = two.contacts_per_second / one.contacts_per_second
    return (
        f"Worker scaling: --workers 2 decided {grown:.2f}x the contacts/s of one process "
        f"({two.contacts_per_second:,.0f} against {one.contacts_per_second:,.0f}), on "
        "cores shared with the load client and Redis"
    )

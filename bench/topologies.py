"""The decision path on a local Redis Cluster (3 masters, 1 replica each), and what
``MAC_REDIS_WAIT_REPLICAS=1`` costs there: the same scenarios against sidecars on the cluster,
one per engine, measured in the same run as the echo servers."""

from __future__ import annotations

from contextlib import AsyncExitStack, ExitStack

import grpc

from bench import procs
from bench.load import Call, Pids, Result
from bench.scenarios import (
    ACTIVE_POOL,
    BATCH,
    activate_active,
    activate_all,
    activate_batch,
    activate_new,
    drive_beside_echoes,
    progress,
)
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.topologies import RedisCluster

# name, extra sidecar settings
SETUPS = (
    ("cluster 3x1", {"MAC_REDIS_TYPE": "cluster"}),
    (
        "cluster 3x1, WAIT 1",
        {"MAC_REDIS_TYPE": "cluster", "MAC_REDIS_WAIT_REPLICAS": "1"},
    ),
)


async def run_topologies(
    echoes: dict[str, Call],
    *,
    engines: list[str],
    concurrency: int,
    warmup: float,
    seconds: float,
    pids: Pids,
) -> list[Result]:
    """Start a cluster, then for each setup a sidecar on it for each of ``engines``, and drive
    the decision scenarios; ``echoes`` are the echo calls by engine."""
    progress("starting a Redis Cluster of 3 masters with a replica each")
    cluster = RedisCluster(masters=3, replicas=1)
    results: list[Result] = []
    try:
        cluster.start()
        redis_pid = int(str(cluster.masters()[0].info("server")["process_id"]))  # one of three
        for setup, env in SETUPS:
            with ExitStack() as sidecars:
                async with AsyncExitStack() as channels:
                    stubs, serving, served = {}, dict(pids), {}
                    for engine in engines:
                        sidecar = procs.start_sidecar(cluster.seeds, engine, **env)
                        sidecars.callback(sidecar.close)
                        serving[f"sidecar {engine}"] = sidecar.proc.pid
                        served[engine] = sidecar.served
                        channel = grpc.aio.insecure_channel(sidecar.addr)
                        channels.push_async_callback(channel.close)
                        stubs[engine] = pb_grpc.EnforcerStub(channel)
                    await activate_all(next(iter(stubs.values())), "bench-active", ACTIVE_POOL)
                    plan = (
                        (
                            "Activate, new contact",
                            {e: activate_new(s, f"bench-new-{e}") for e, s in stubs.items()},
                            1,
                        ),
                        (
                            "Activate, already active",
                            {e: activate_active(s) for e, s in stubs.items()},
                            1,
                        ),
                        (
                            f"ActivateBatch x{BATCH}, new",
                            {e: activate_batch(s, f"bench-batch-{e}") for e, s in stubs.items()},
                            BATCH,
                        ),
                    )
                    for name, calls, per_call in plan:
                        results += await drive_beside_echoes(
                            f"[{setup}] {name}",
                            calls,
                            echoes,
                            concurrency=concurrency,
                            warmup=warmup,
                            seconds=seconds,
                            contacts_per_call=per_call,
                            pids={**serving, "redis": redis_pid},
                            round_=1,
                            served=served,
                        )
            cluster.flush()
    finally:
        cluster.close()
    return results

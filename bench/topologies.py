"""The decision path on a local Redis Cluster (3 masters, 1 replica each), and what
``MAC_REDIS_WAIT_REPLICAS=1`` costs there: the same scenarios against sidecars on the cluster,
measured in the same run as the echo server."""

from __future__ import annotations

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
    drive_beside_echo,
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
    echo: Call, *, concurrency: int, warmup: float, seconds: float, pids: Pids
) -> list[Result]:
    """Start a cluster, then for each setup a sidecar on it, and drive the decision scenarios."""
    progress("starting a Redis Cluster of 3 masters with a replica each")
    cluster = RedisCluster(masters=3, replicas=1)
    results: list[Result] = []
    try:
        cluster.start()
        redis_pid = int(str(cluster.masters()[0].info("server")["process_id"]))  # one of three
        for setup, env in SETUPS:
            sidecar = procs.start_sidecar(cluster.seeds, **env)
            try:
                async with grpc.aio.insecure_channel(sidecar.addr) as channel:
                    stub = pb_grpc.EnforcerStub(channel)
                    await activate_all(stub, "bench-active", ACTIVE_POOL)
                    plan = (
                        ("Activate, new contact", activate_new(stub), 1),
                        ("Activate, already active", activate_active(stub), 1),
                        (f"ActivateBatch x{BATCH}, new", activate_batch(stub), BATCH),
                    )
                    for name, call, per_call in plan:
                        results.append(
                            await drive_beside_echo(
                                f"[{setup}] {name}",
                                call,
                                echo,
                                concurrency=concurrency,
                                warmup=warmup,
                                seconds=seconds,
                                contacts_per_call=per_call,
                                pids={**pids, "sidecar": sidecar.proc.pid, "redis": redis_pid},
                                round_=1,
                            )
                        )
            finally:
                sidecar.close()
            cluster.flush()
    finally:
        cluster.close()
    return results

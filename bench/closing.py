"""The closing sweep's cost over many workspaces: every workspace with a count in November,
swept when November closes (all close at once), swept again (nothing due, the sweeper knows
them), and swept by a sweeper that has never seen them (nothing due, each read once)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from bench.scenarios import progress
from sidecar.domain.clock import ManualClock
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from sidecar.storage.keys import REGISTRY, WorkspaceKeys
from tests.support.redis_servers import RedisServer

NOVEMBER = "2026-11"
CLOSES = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(minutes=10)
PIPELINE = 1000


def _seed(redis: RedisServer, workspaces: int) -> None:
    """``workspaces`` workspaces, each with November counted as decide.lua leaves it."""
    with redis.client() as client:
        for first in range(0, workspaces, PIPELINE):
            pipe = client.pipeline(transaction=False)
            for n in range(first, min(first + PIPELINE, workspaces)):
                ws = f"sweep-{n}"
                pipe.sadd(REGISTRY, ws)
                pipe.hset(
                    WorkspaceKeys(ws).counts,
                    mapping={
                        NOVEMBER: 3 + n % 7,
                        f"{NOVEMBER}:limit": 100,
                        f"{NOVEMBER}:plan": "starter",
                        f"{NOVEMBER}:packs": 0,
                    },
                )
            pipe.execute()


async def _timed_sweep(sidecar: Sidecar) -> tuple[float, int, int]:
    started = time.perf_counter()
    report = await sidecar.closing.sweep()
    return time.perf_counter() - started, report.read, report.closed


async def measure_sweep(workspaces: int) -> dict[str, float]:
    """Seconds of each sweep over ``workspaces`` workspaces on a Redis of its own."""
    redis = RedisServer()
    redis.start()
    try:
        progress(f"closing sweep: {workspaces:,} workspaces with a count in {NOVEMBER}")
        _seed(redis, workspaces)
        settings = Settings(
            redis_url=redis.url,
            grpc_addr="127.0.0.1:0",
            metrics_addr="",
            identity_secret="bench-identity-secret-0123456789",
            admin_token="bench-admin-token-0123456789",
        )
        figures: dict[str, float] = {"workspaces": workspaces}
        sidecar = Sidecar(settings, ManualClock(CLOSES))
        try:
            seconds, read, closed = await _timed_sweep(sidecar)
            if closed != workspaces:
                raise RuntimeError(f"the sweep closed {closed} periods of {workspaces}")
            figures["all_close_s"] = seconds
            seconds, read, closed = await _timed_sweep(sidecar)
            figures["nothing_due_known_s"] = seconds
            figures["nothing_due_known_read"] = read
        finally:
            await sidecar.connections.close()
        fresh = Sidecar(settings, ManualClock(CLOSES + timedelta(minutes=1)))
        try:
            seconds, read, closed = await _timed_sweep(fresh)
            if closed:
                raise RuntimeError(f"a sweep after the close closed {closed} periods again")
            figures["nothing_due_cold_s"] = seconds
            figures["nothing_due_cold_read"] = read
        finally:
            await fresh.connections.close()
        return figures
    finally:
        redis.close()

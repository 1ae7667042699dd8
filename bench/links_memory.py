"""The links' memory for N identities seen once, before and after the links sweep expires
them, and Forget's time for an identity with 10 identifiers.

Run: ``.venv/bin/python -m bench.links_memory [N]`` (default 1,000,000). It starts a Redis of
its own and an in-process sidecar on a manual clock, activates N contacts of two identifiers
each (an id and an email: each has links) through ActivateBatch of 1000, reports MEMORY
USAGE of the links hash and of the identity index and used_memory, moves the clock
MAC_RETENTION_PERIODS + 1 periods on, runs the links sweep and reports them again.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import grpc
import redis

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from sidecar.storage.keys import WorkspaceKeys
from tests.support.redis_servers import RedisServer

TOKEN = "bench-admin-token"
AUTH = (("authorization", f"Bearer {TOKEN}"),)
KEYS = WorkspaceKeys("bench")
BATCH = 1000


def memory(r: redis.Redis) -> dict[str, int]:
    def usage(key: str) -> int:
        return int(r.memory_usage(key, samples=0) or 0)

    return {
        "links_bytes": usage(KEYS.links),
        "index_bytes": usage(KEYS.identities),
        "links_fields": int(r.hlen(KEYS.links)),
        "index_fields": int(r.hlen(KEYS.identities)),
        "used_memory": int(r.info("memory")["used_memory"]),
    }


async def run(n: int) -> None:
    server = RedisServer()
    server.start()
    r = server.client()
    clock = ManualClock(datetime(2026, 11, 15, 12, 0, tzinfo=UTC))
    settings = Settings(
        redis_url=server.url,
        grpc_addr="127.0.0.1:0",
        metrics_addr="",
        identity_secret="bench-identity-secret-0123456789",
        admin_token=TOKEN,
        default_limit=10 * n,
        default_plan="enterprise",
        warm_seconds=0.0,
        close_sweep_seconds=3600.0,
        redis_timeout=30.0,
    )
    service = Sidecar(settings, clock)
    await service.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{service.port}") as channel:
            stub = pb_grpc.EnforcerStub(channel)
            admin = admin_grpc.AdminStub(channel)
            started = time.perf_counter()
            for first in range(0, n, BATCH):
                contacts = [
                    pb.Contact(id=f"u{i}", email=f"u{i}@example.com")
                    for i in range(first, min(first + BATCH, n))
                ]
                await stub.ActivateBatch(
                    pb.ActivateBatchRequest(workspace_id="bench", contacts=contacts)
                )
            print(f"activated {n} contacts in {time.perf_counter() - started:.1f} s")
            print("before expiry:", memory(r))

            # Forget: 20 people of 10 identifiers each (an id, 5 emails, 4 visitors)
            took = []
            for p in range(20):
                person = f"f{p}"
                for k in range(5):
                    await stub.Activate(
                        pb.ActivateRequest(
                            workspace_id="bench",
                            contact=pb.Contact(
                                id=person,
                                email=f"{person}.{k}@example.com",
                                channel="web",
                                visitor_id=f"{person}-v{k}" if k < 4 else "",
                            ),
                        )
                    )
                t0 = time.perf_counter()
                reply = await admin.Forget(
                    admin_pb.ForgetRequest(workspace_id="bench", contact=pb.Contact(id=person)),
                    metadata=AUTH,
                )
                took.append(time.perf_counter() - t0)
                assert reply.identifiers_removed == 10, reply
            print(
                f"Forget of 10 identifiers: median {statistics.median(took) * 1000:.2f} ms, "
                f"max {max(took) * 1000:.2f} ms (gRPC round trip, in-process sidecar)"
            )

            clock.advance(timedelta(days=31 * (settings.retention_periods + 1)))
            started = time.perf_counter()
            expired = await service.link_expiry.sweep(["bench"])
            print(f"sweep expired {expired} identities in {time.perf_counter() - started:.1f} s")
            print("after expiry:", memory(r))
    finally:
        await service.stop()
        r.close()
        server.close()


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    asyncio.run(run(n))


if __name__ == "__main__":
    main()

"""The gRPC engines (``MAC_GRPC_ENGINE``): what the native one refuses and why, that it serves
the hot methods itself, and behaviours both engines must share under stress (the concurrency
gate under overload, a call ended while its Redis script runs, nothing left in the temporary
directory by a killed process)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis

from sidecar.domain.clock import ManualClock
from sidecar.domain.errors import ConfigError
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server import engines
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.support.constants import ADMIN_TOKEN, AUTH, SECRET
from tests.support.engines import NATIVE_INSTALLED, NATIVE_MISSING
from tests.support.redis_servers import RedisServer
from tests.support.sidecar_process import SidecarProcess
from tests.support.sidecars import SidecarFactory

needs_native = pytest.mark.skipif(not NATIVE_INSTALLED, reason=NATIVE_MISSING)
HOT = ("Activate", "Check", "ActivateBatch", "CheckBatch")


def native_settings(redis_server: RedisServer, **changes: Any) -> Settings:
    return Settings(
        redis_url=redis_server.url,
        grpc_addr="127.0.0.1:0",
        metrics_addr="",
        identity_secret=SECRET,
        admin_token=ADMIN_TOKEN,
        default_plan="enterprise",
        health_interval=0.1,
        shutdown_grace=0.5,
        grpc_engine="native",
        **changes,
    )


@pytest.fixture
async def native_sidecar(
    redis_server: RedisServer, redis_db: redis.Redis, clock: ManualClock
) -> AsyncIterator[Sidecar]:
    service = Sidecar(native_settings(redis_server), clock)
    await service.start()
    yield service
    await service.stop()


def test_native_without_its_extra_refuses_to_start_saying_what_to_install(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pygrpc_native", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "sidecar.server.native", raising=False)
    with pytest.raises(ConfigError) as refused:
        Sidecar(native_settings(redis_server))
    assert str(refused.value) == engines.NATIVE_MISSING
    assert "pip install 'mac-sidecar[native]'" in str(refused.value)
    # the default engine needs nothing more
    assert isinstance(
        engines.engine(native_settings(redis_server).replace(grpc_engine="grpcio")),
        engines.GrpcioEngine,
    )


def test_native_refuses_tls_saying_why_and_what_to_do(redis_server: RedisServer) -> None:
    """Differs by design: pygrpc-native has no TLS, so TLS and mTLS stay on grpcio."""
    for extra in ({}, {"tls_client_ca_file": "ca.pem"}):
        with pytest.raises(ConfigError) as refused:
            native_settings(redis_server, tls_cert_file="tls.crt", tls_key_file="tls.key", **extra)
        message = str(refused.value)
        assert message.startswith("MAC_GRPC_ENGINE=native serves no TLS")
        assert "MAC_GRPC_ENGINE=grpcio" in message


def test_an_unknown_engine_is_refused_naming_the_choices(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigError, match="MAC_GRPC_ENGINE must be one of grpcio, native"):
        native_settings(redis_server).replace(grpc_engine="tonic")


@needs_native
async def test_the_hot_methods_are_served_natively_not_through_the_forwarding_socket(
    native_sidecar: Sidecar,
) -> None:
    """With the forwarding server (what serves bidirectional streams and reflection) stopped,
    the hot methods still answer: the native front serves them itself. ActivateStream, which
    goes through it, no longer does, which shows the probe would see a forwarded method."""
    server: Any = native_sidecar.server
    served = {path for path, _ in server._table}
    assert {f"/mac.v1.Enforcer/{name}" for name in HOT} <= served
    assert "/mac.v1.Enforcer/ActivateStream" not in served
    await server._fallback.stop(0)
    contact = pb.Contact(id="crm-1")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{native_sidecar.port}") as channel:
        stub = pb_grpc.EnforcerStub(channel)
        activated = await stub.Activate(pb.ActivateRequest(workspace_id="acme", contact=contact))
        checked = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=contact))
        batch = await stub.ActivateBatch(
            pb.ActivateBatchRequest(workspace_id="acme", contacts=[contact])
        )
        checks = await stub.CheckBatch(
            pb.CheckBatchRequest(workspace_id="acme", contacts=[contact])
        )
        assert activated.reason == pb.REASON_ADMITTED
        assert checked.reason == pb.REASON_ALREADY_ACTIVE
        assert batch.decisions[0].reason == pb.REASON_ALREADY_ACTIVE
        assert checks.decisions[0].reason == pb.REASON_ALREADY_ACTIVE
        # Nothing is written on the stream: a message sent while the refusal arrives fails on
        # the client's side (INTERNAL, "Failed execute_batch") before the status is read.
        stream = stub.ActivateStream()
        with pytest.raises(grpc.aio.AioRpcError) as forwarded:
            await stream.read()
        assert forwarded.value.code() == grpc.StatusCode.UNAVAILABLE


@needs_native
async def test_the_socket_gets_a_native_server_of_its_own(
    redis_server: RedisServer, redis_db: redis.Redis, clock: ManualClock, tmp_path: Path
) -> None:
    """pygrpc-native binds one listener per server: MAC_GRPC_UDS is served by a second one,
    with the same services and the same gate."""
    socket = tmp_path / "mac.sock"
    service = Sidecar(native_settings(redis_server, grpc_uds=str(socket)), clock)
    await service.start()
    try:
        assert service.socket_server is not None
        assert service.socket_server is not service.server
        async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
            decision = await pb_grpc.EnforcerStub(channel).Activate(
                pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(id="crm-1"))
            )
            assert decision.reason == pb.REASON_ADMITTED
    finally:
        await service.stop()
    assert not socket.exists()


async def test_a_call_ended_while_its_redis_script_runs_frees_its_place(
    make_sidecar: SidecarFactory, redis_db: redis.Redis
) -> None:
    """A deadline passing, or the caller cancelling, while ``decide.lua`` waits on a paused
    Redis: the caller gets its status at once, and the call leaves the gate."""
    stub = await make_sidecar(redis_timeout=2.0)
    service = make_sidecar.last
    request = pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(id="crm-1"))
    redis_db.client_pause(800, all=False)  # writes (decide.lua) wait
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stub.Activate(request, timeout=0.2)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    cancelled = stub.Activate(request)
    await asyncio.sleep(0.2)
    assert service.gate.in_progress >= 1
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert time.monotonic() - started < 0.7  # neither waited for Redis
    for _ in range(100):
        if service.gate.in_progress == 0:
            break
        await asyncio.sleep(0.02)
    assert service.gate.in_progress == 0
    redis_db.client_unpause()
    assert (await stub.Activate(request, timeout=5)).allowed


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def flood(port: int, calls: int, channels: int = 4) -> Counter[grpc.StatusCode]:
    """``calls`` Activate calls at once over ``channels`` connections; their status codes."""
    request = pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(id="crm-1"))
    codes: Counter[grpc.StatusCode] = Counter()
    opened = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _ in range(channels)]
    try:
        stubs = [pb_grpc.EnforcerStub(channel) for channel in opened]

        async def one(n: int) -> None:
            try:
                await stubs[n % channels].Activate(request, timeout=20)
            except grpc.aio.AioRpcError as exc:
                codes[exc.code()] += 1
            else:
                codes[grpc.StatusCode.OK] += 1

        await asyncio.gather(*(one(n) for n in range(calls)))
    finally:
        for channel in opened:
            await channel.close()
    return codes


@pytest.mark.usefixtures("redis_db")
async def test_the_gate_refuses_an_overload_at_once_in_flat_memory(
    redis_server: RedisServer, engine_env: str
) -> None:
    """MAC_MAX_CONCURRENT_RPCS=1 held by an event stream, then floods of calls: every one is
    RESOURCE_EXHAUSTED, in bounded time, and a second flood grows the process by little (the
    native engine's queue to Python is bounded by the gate, not only grpcio's)."""
    process = SidecarProcess(
        redis_server.url, MAC_MAX_CONCURRENT_RPCS="1", MAC_ADMIN_TOKEN=ADMIN_TOKEN
    )
    process.start()
    assert process.proc is not None
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel:
            stream = admin_grpc.AdminStub(channel).WatchEvents(
                admin_pb.WatchEventsRequest(workspace_id="acme"), metadata=AUTH
            )
            read = asyncio.ensure_future(stream.read())
            await asyncio.sleep(0.5)  # the stream holds the one place
            assert not read.done()
            warm = await flood(process.port, 4000)
            before = rss_kib(process.proc.pid)
            started = time.monotonic()
            codes = await flood(process.port, 4000)
            elapsed = time.monotonic() - started
            grown = rss_kib(process.proc.pid) - before
            stream.cancel()
            await asyncio.gather(read, return_exceptions=True)
        refused = {grpc.StatusCode.RESOURCE_EXHAUSTED}
        if engine_env == "grpcio":
            # grpc-core itself ends some calls of a flood CANCELLED before grpc.aio hands them
            # to the servicer; pygrpc-native hands every one to the gate
            refused.add(grpc.StatusCode.CANCELLED)
        for answered in (warm, codes):
            assert set(answered) <= refused, answered
            assert answered.total() == 4000
            assert answered[grpc.StatusCode.RESOURCE_EXHAUSTED] > 0
        assert elapsed < 15, f"4000 refusals took {elapsed:.1f} s"
        assert grown < 24 * 1024, f"grew {grown} KiB"
        print(f"4000 calls refused in {elapsed:.2f} s, RSS +{grown} KiB")
    finally:
        process.stop()


@pytest.mark.usefixtures("redis_db")
async def test_a_killed_sidecar_leaves_nothing_in_the_temporary_directory(
    redis_server: RedisServer, engine_env: str, tmp_path: Path
) -> None:
    """SIGKILL runs no clean-up: on the native engine the forwarding socket (bidirectional
    streams, reflection) lives in Linux's abstract namespace, never a file under $TMPDIR."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    process = SidecarProcess(redis_server.url, TMPDIR=str(temporary))
    process.start()
    assert process.proc is not None
    async with grpc.aio.insecure_channel(f"127.0.0.1:{process.port}") as channel:
        stream = pb_grpc.EnforcerStub(channel).ActivateStream(
            iter(
                [
                    pb.ActivateStreamRequest(
                        activate=pb.ActivateRequest(
                            workspace_id="acme", contact=pb.Contact(id="crm-1")
                        )
                    )
                ]
            )
        )
        answers = [answer async for answer in stream]
        assert answers[0].decision.reason == pb.REASON_ADMITTED
    os.kill(process.proc.pid, signal.SIGKILL)
    process.proc.wait(10)
    process.stop()
    assert list(temporary.iterdir()) == [], engine_env

"""The measured scenarios, each one kind of call, and Redis memory per counted contact."""

from __future__ import annotations

import sys
from typing import Any

import grpc
import redis

from bench.echo import METHOD
from bench.load import Call, Result, drive
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc

ACTIVE_POOL = 10_000
BATCH = 100
MEMORY_BATCH = 1000
TIMEOUT = 5.0


def email(i: int) -> str:
    """The ``i``-th contact's email address."""
    return f"c{i}@bench.example"


def activate_request(workspace: str, i: int) -> pb.ActivateRequest:
    return pb.ActivateRequest(workspace_id=workspace, contact=pb.Contact(email=email(i)))


def batch_request(workspace: str, first: int, count: int) -> pb.ActivateBatchRequest:
    contacts = [pb.Contact(email=email(i)) for i in range(first, first + count)]
    return pb.ActivateBatchRequest(workspace_id=workspace, contacts=contacts)


def _expect(reply: Any, reason: int) -> str | None:
    if reply.reason == reason:
        return None
    return f"expected {pb.Reason.Name(reason)}, got {pb.Reason.Name(reply.reason)}"


def echo_call(channel: grpc.aio.Channel) -> Call:
    """An ActivateRequest (new contact) sent to the echo server, and parsed back."""
    echo = channel.unary_unary(
        METHOD,
        request_serializer=pb.ActivateRequest.SerializeToString,
        response_deserializer=pb.ActivateRequest.FromString,
    )

    async def call(i: int) -> str | None:
        request = activate_request("bench-echo", i)
        reply = await echo(request, timeout=TIMEOUT)
        return None if reply == request else "the echo differs from the request"

    return call


def check_new(stub: Any) -> Call:
    async def call(i: int) -> str | None:
        request = pb.CheckRequest(workspace_id="bench-check", contact=pb.Contact(email=email(i)))
        return _expect(await stub.Check(request, timeout=TIMEOUT), pb.REASON_WITHIN_LIMIT)

    return call


def activate_new(stub: Any) -> Call:
    async def call(i: int) -> str | None:
        reply = await stub.Activate(activate_request("bench-new", i), timeout=TIMEOUT)
        return _expect(reply, pb.REASON_ADMITTED)

    return call


def activate_active(stub: Any) -> Call:
    async def call(i: int) -> str | None:
        request = activate_request("bench-active", i % ACTIVE_POOL)
        return _expect(await stub.Activate(request, timeout=TIMEOUT), pb.REASON_ALREADY_ACTIVE)

    return call


def activate_batch(stub: Any) -> Call:
    async def call(i: int) -> str | None:
        request = batch_request("bench-batch", i * BATCH, BATCH)
        reply = await stub.ActivateBatch(request, timeout=TIMEOUT)
        if len(reply.decisions) != BATCH:
            return f"expected {BATCH} decisions, got {len(reply.decisions)}"
        return _expect(reply.decisions[-1], pb.REASON_ADMITTED)

    return call


async def activate_all(stub: Any, workspace: str, count: int) -> None:
    """Activate contacts 0 to ``count - 1`` of ``workspace`` in batches; all must be admitted."""
    for first in range(0, count, MEMORY_BATCH):
        size = min(MEMORY_BATCH, count - first)
        reply = await stub.ActivateBatch(batch_request(workspace, first, size), timeout=30)
        admitted = sum(d.reason == pb.REASON_ADMITTED for d in reply.decisions)
        if admitted != size:
            raise RuntimeError(f"{workspace}: {admitted} of {size} contacts admitted")


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def run_scenarios(
    echo: grpc.aio.Channel,
    sidecar: grpc.aio.Channel,
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    pids: dict[str, int],
) -> list[Result]:
    """Every throughput scenario, echo first.

    ``pids`` names the echo, sidecar, redis and client processes, whose CPU use is reported.
    """
    stub = pb_grpc.EnforcerStub(sidecar)
    progress(f"activating a pool of {ACTIVE_POOL:,} contacts for the already-active scenario")
    await activate_all(stub, "bench-active", ACTIVE_POOL)
    plan: list[tuple[str, str, Call, int]] = [
        ("echo (bare grpc.aio)", "echo", echo_call(echo), 1),
        ("Check, new contact", "sidecar", check_new(stub), 1),
        ("Activate, new contact", "sidecar", activate_new(stub), 1),
        ("Activate, already active", "sidecar", activate_active(stub), 1),
        (f"ActivateBatch x{BATCH}, new", "sidecar", activate_batch(stub), BATCH),
    ]
    results = []
    for name, server, call, per_call in plan:
        progress(f"running {name}: {warmup:g} s warm-up + {seconds:g} s")
        processes = {"server": pids[server], "redis": pids["redis"], "client": pids["client"]}
        result = await drive(
            name,
            call,
            concurrency=concurrency,
            warmup=warmup,
            seconds=seconds,
            contacts_per_call=per_call,
            pids=processes,
        )
        results.append(result)
    return results


async def memory_per_contact(
    sidecar: grpc.aio.Channel, client: redis.Redis, contacts: int
) -> dict[str, float]:
    """Redis ``used_memory`` growth per contact counted in a fresh workspace, via ActivateBatch."""
    workspace = "bench-memory"
    progress(f"activating {contacts:,} contacts in a fresh workspace to measure Redis memory")
    before = int(client.info("memory")["used_memory"])
    await activate_all(pb_grpc.EnforcerStub(sidecar), workspace, contacts)
    after = int(client.info("memory")["used_memory"])
    set_bytes = sum(
        int(client.memory_usage(key, samples=0) or 0)
        for key in client.scan_iter(match=f"mac:{{{workspace}}}:members:*")
    )
    return {
        "contacts": contacts,
        "used_memory_delta": after - before,
        "bytes_per_contact": (after - before) / contacts,
        "set_bytes_per_contact": set_bytes / contacts,
    }

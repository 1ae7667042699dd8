"""The measured scenarios, each one kind of call, and Redis memory per counted contact."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import deque
from typing import Any

import grpc
import redis

from bench.echo import METHOD, STREAM_METHOD
from bench.load import Call, Pids, Result, drive
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc

ACTIVE_POOL = 10_000
BATCH = 100
MEMORY_BATCH = 1000
TIMEOUT = 5.0
WARM = "Activate, already active (warm)"  # the first of the scenarios of the active pool
ECHO_UNARY = "echo, unary"  # the run beside each scenario
ECHO_STREAM = "echo stream, per message"
# the flood guard of the guarded scenario: FLAG at a rate no run reaches
FLOOD_GUARD = admin_pb.FloodGuard(new_per_minute=1_000_000, action=admin_pb.FloodGuard.ACTION_FLAG)


def email(i: int) -> str:
    """The ``i``-th contact's email address."""
    return f"c{i}@bench.example"


# how long before the call its event happened, when a scenario sends occurred_at
EVENT_AGE = 2.0


def activate_request(workspace: str, i: int, *, occurred: bool = False) -> pb.ActivateRequest:
    """Contact ``i`` of ``workspace``; with ``occurred``, an ``occurred_at`` ``EVENT_AGE``
    seconds before now (a queued event of the current period)."""
    request = pb.ActivateRequest(workspace_id=workspace, contact=pb.Contact(email=email(i)))
    if occurred:
        request.occurred_at.FromNanoseconds(time.time_ns() - int(EVENT_AGE * 1e9))
    return request


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


def activate_new(stub: Any, workspace: str = "bench-new", *, occurred: bool = False) -> Call:
    async def call(i: int) -> str | None:
        request = activate_request(workspace, i, occurred=occurred)
        return _expect(await stub.Activate(request, timeout=TIMEOUT), pb.REASON_ADMITTED)

    return call


async def guard_workspace(channel: grpc.aio.Channel, workspace: str) -> None:
    """Give ``workspace`` a subscription at the sidecars' default limit with ``FLOOD_GUARD``
    (the bench's sidecars run without an admin token)."""
    request = admin_pb.SetSubscriptionRequest(
        workspace_id=workspace, plan="enterprise", custom_limit=10_000_000
    )
    request.flood_guard.CopyFrom(FLOOD_GUARD)
    await admin_grpc.AdminStub(channel).SetSubscription(request, timeout=TIMEOUT)


def activate_active(stub: Any, *, occurred: bool = False) -> Call:
    async def call(i: int) -> str | None:
        request = activate_request("bench-active", i % ACTIVE_POOL, occurred=occurred)
        return _expect(await stub.Activate(request, timeout=TIMEOUT), pb.REASON_ALREADY_ACTIVE)

    return call


class StreamPipe:
    """One bidirectional stream (``ActivateStream``, or the echo server's) shared by the load's
    workers: each call writes one message and awaits its answer, which comes back in order."""

    def __init__(self, call: Any) -> None:
        self._call = call
        self._waiting: deque[asyncio.Future[Any]] = deque()
        self._writing = asyncio.Lock()  # a message's place in the queue is its place on the wire
        self._reader: asyncio.Task[None] | None = None

    async def send(self, request: pb.ActivateStreamRequest) -> Any:
        """The answer to ``request``."""
        if self._reader is None:
            self._reader = asyncio.create_task(self._read())
        answer = asyncio.get_running_loop().create_future()
        async with self._writing:
            self._waiting.append(answer)
            await self._call.write(request)
        return await answer

    async def _read(self) -> None:
        try:
            while (response := await self._call.read()) is not grpc.aio.EOF:
                self._waiting.popleft().set_result(response)
        except grpc.aio.AioRpcError as exc:
            for answer in self._waiting:
                answer.set_exception(exc)

    async def close(self) -> None:
        """Half-close the stream and wait for the last answers."""
        await self._call.done_writing()
        if self._reader is not None:
            await self._reader


def echo_stream_pipe(channel: grpc.aio.Channel) -> StreamPipe:
    """A stream to the echo server, carrying ActivateStream's messages and parsing them back."""
    method = channel.stream_stream(
        STREAM_METHOD,
        request_serializer=pb.ActivateStreamRequest.SerializeToString,
        response_deserializer=pb.ActivateStreamRequest.FromString,
    )
    return StreamPipe(method())


def echo_stream(pipe: StreamPipe) -> Call:
    """The stream scenario's message, echoed by a bare stream: the floor of any stream's
    cost per message on that engine."""

    async def call(i: int) -> str | None:
        request = pb.ActivateStreamRequest(
            activate=activate_request("bench-active", i % ACTIVE_POOL), tag=i
        )
        reply = await pipe.send(request)
        return None if reply == request else "the echo differs from the message"

    return call


def stream_active(pipe: StreamPipe) -> Call:
    async def call(i: int) -> str | None:
        request = activate_request("bench-active", i % ACTIVE_POOL)
        response = await pipe.send(pb.ActivateStreamRequest(activate=request, tag=i))
        if response.WhichOneof("result") != "decision":
            return f"error {response.error.code}: {response.error.message}"
        return _expect(response.decision, pb.REASON_ALREADY_ACTIVE)

    return call


def activate_batch(stub: Any, workspace: str = "bench-batch", size: int = BATCH) -> Call:
    async def call(i: int) -> str | None:
        request = batch_request(workspace, i * size, size)
        reply = await stub.ActivateBatch(request, timeout=TIMEOUT)
        if len(reply.decisions) != size:
            return f"expected {size} decisions, got {len(reply.decisions)}"
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


async def ask_each(stub: Any, workspace: str, count: int, concurrency: int) -> None:
    """Activate contacts 0 to ``count - 1`` of ``workspace`` once each, one unary call per
    contact, ``concurrency`` at a time: as the first message of each of ``count``
    conversations reaches the sidecar, before the later ones the warm scenarios measure."""
    numbers = iter(range(count))

    async def worker() -> None:
        for i in numbers:
            reply = await stub.Activate(activate_request(workspace, i), timeout=TIMEOUT)
            if reply.reason not in (pb.REASON_ADMITTED, pb.REASON_ALREADY_ACTIVE):
                raise RuntimeError(f"{workspace}: contact {i} {pb.Reason.Name(reply.reason)}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def drive_beside_echoes(
    name: str,
    calls: dict[str, Call],
    echoes: dict[str, Call],
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    contacts_per_call: int,
    pids: Pids,
    round_: int,
    served: dict[str, str],
    server: str = "sidecar",
) -> list[Result]:
    """Drive each echo server, then each of ``calls`` against ``server`` (the sidecar, or the
    echo server itself) on its engine; each result carries the echo runs as its baselines.

    ``calls`` and ``echoes`` are keyed by engine; ``pids`` names the processes
    (``"sidecar native"``, ``"echo grpcio"``, ``"redis"``, ``"client"``); ``served`` is the
    engine each ``server`` serves with, by the engine it was asked for.
    """

    async def run(label: str, pid: int | list[int], call: Call, per_call: int) -> Result:
        progress(f"round {round_}: {label}: {warmup:g} s warm-up + {seconds:g} s")
        processes = {"server": pid, "redis": pids["redis"], "client": pids["client"]}
        return await drive(
            label,
            call,
            concurrency=concurrency,
            warmup=warmup,
            seconds=seconds,
            contacts_per_call=per_call,
            pids=processes,
        )

    baselines: dict[str, Result] = {}
    for engine, echo in echoes.items():
        echo_run = await run(f"{ECHO_UNARY} ({engine})", pids[f"echo {engine}"], echo, 1)
        echo_run.name, echo_run.server, echo_run.engine = ECHO_UNARY, "echo", engine
        echo_run.served, echo_run.baselines, echo_run.round = engine, baselines, round_
        baselines[engine] = echo_run
    results = []
    for engine, call in calls.items():
        label = f"{name} ({server} {engine})"
        result = await run(label, pids[f"{server} {engine}"], call, contacts_per_call)
        result.name, result.server, result.engine = name, server, engine
        result.served, result.baselines, result.round = served[engine], baselines, round_
        results.append(result)
    return results


async def run_scenarios(
    echoes: dict[str, grpc.aio.Channel],
    sidecars: dict[str, grpc.aio.Channel],
    *,
    concurrency: int,
    warmup: float,
    seconds: float,
    pids: Pids,
    served: dict[str, str],
    uds: dict[str, grpc.aio.Channel] | None = None,
) -> list[Result]:
    """Every throughput scenario on each engine's sidecar, each beside a run of each echo
    server, in two rounds.

    ``echoes`` and ``sidecars`` are channels keyed by engine (the sidecars share one Redis);
    ``pids`` names the processes whose CPU use is reported; ``served`` is the engine each
    sidecar serves with, by the engine asked; ``uds`` are channels to the same sidecars over
    their Unix domain sockets.
    """
    stubs = {engine: pb_grpc.EnforcerStub(channel) for engine, channel in sidecars.items()}
    pipes = {engine: StreamPipe(stub.ActivateStream()) for engine, stub in stubs.items()}
    echo_pipes = {engine: echo_stream_pipe(channel) for engine, channel in echoes.items()}
    progress(f"activating a pool of {ACTIVE_POOL:,} contacts for the already-active scenario")
    await activate_all(next(iter(stubs.values())), "bench-active", ACTIVE_POOL)
    results = []
    baselines = {engine: echo_call(channel) for engine, channel in echoes.items()}
    echo_served = {engine: engine for engine in echoes}
    for round_ in (1, 2):  # twice, each run beside echo runs: noise shows
        for engine, channel in sidecars.items():
            await guard_workspace(channel, f"bench-flood-{round_}-{engine}")
        # new contacts of a round and an engine of their own
        # (name, the call by engine, contacts per call, the server measured)
        plan: list[tuple[str, dict[str, Call], int, str]] = [
            ("Check, new contact", {e: check_new(s) for e, s in stubs.items()}, 1, "sidecar"),
            (
                "Activate, new contact",
                {e: activate_new(s, f"bench-new-{round_}-{e}") for e, s in stubs.items()},
                1,
                "sidecar",
            ),
            (
                "Activate, new contact, flood guard set",
                {e: activate_new(s, f"bench-flood-{round_}-{e}") for e, s in stubs.items()},
                1,
                "sidecar",
            ),
            (
                "Activate, new contact, occurred_at",
                {
                    e: activate_new(s, f"bench-occurred-{round_}-{e}", occurred=True)
                    for e, s in stubs.items()
                },
                1,
                "sidecar",
            ),
            (WARM, {e: activate_active(s) for e, s in stubs.items()}, 1, "sidecar"),
            (
                "Activate, already active (warm), occurred_at",
                {e: activate_active(s, occurred=True) for e, s in stubs.items()},
                1,
                "sidecar",
            ),
            (ECHO_STREAM, {e: echo_stream(p) for e, p in echo_pipes.items()}, 1, "echo"),
            (
                "ActivateStream, already active",
                {e: stream_active(p) for e, p in pipes.items()},
                1,
                "sidecar",
            ),
            (
                f"ActivateBatch x{BATCH}, new",
                {e: activate_batch(s, f"bench-batch-{round_}-{e}") for e, s in stubs.items()},
                BATCH,
                "sidecar",
            ),
        ]
        if uds:
            over_uds = {e: activate_active(pb_grpc.EnforcerStub(c)) for e, c in uds.items()}
            plan.insert(-1, ("Activate over UDS, already active", over_uds, 1, "sidecar"))
        for name, calls, per_call, server in plan:
            if name == WARM:
                # the scenarios before may have pushed the pool out of the process's records
                progress(f"round {round_}: a first message from each of the {ACTIVE_POOL:,}")
                for stub in stubs.values():
                    await ask_each(stub, "bench-active", ACTIVE_POOL, concurrency)
            results += await drive_beside_echoes(
                name,
                calls,
                baselines,
                concurrency=concurrency,
                warmup=warmup,
                seconds=seconds,
                contacts_per_call=per_call,
                pids=pids,
                round_=round_,
                served=echo_served if server == "echo" else served,
                server=server,
            )
    for pipe in [*pipes.values(), *echo_pipes.values()]:
        await pipe.close()
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

"""Calls the tests make again and again, through real gRPC stubs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.gen.mac.v1.admin_pb2 import Event
from tests.support.constants import AUTH

TASKS = 16  # client tasks of the concurrent calls
# A sidecar that keeps a caller waiting this long is hung, not unavailable.
CALL_DEADLINE = 10.0


async def subscribe(
    admin_stub: admin_grpc.AdminStub, ws: str = "acme", **fields: Any
) -> admin_pb.Subscription:
    sub: admin_pb.Subscription = await admin_stub.SetSubscription(
        admin_pb.SetSubscriptionRequest(workspace_id=ws, **fields), metadata=AUTH
    )
    return sub


async def activate(stub: pb_grpc.EnforcerStub, n: int, ws: str = "acme") -> pb.Decision:
    contact = pb.Contact(email=f"p{n}@example.com")
    decision: pb.Decision = await stub.Activate(
        pb.ActivateRequest(workspace_id=ws, contact=contact)
    )
    return decision


async def fill(stub: pb_grpc.EnforcerStub, first: int, count: int, ws: str = "acme") -> None:
    contacts = [pb.Contact(email=f"p{n}@example.com") for n in range(first, first + count)]
    response = await stub.ActivateBatch(pb.ActivateBatchRequest(workspace_id=ws, contacts=contacts))
    assert all(d.reason == pb.REASON_ADMITTED for d in response.decisions)


async def read_events(
    admin_stub: admin_grpc.AdminStub, count: int, ws: str = "acme", after: str = ""
) -> list[admin_pb.Event]:
    """The first ``count`` events the stream delivers (fails after 5 s without them)."""
    call = admin_stub.WatchEvents(
        admin_pb.WatchEventsRequest(workspace_id=ws, after_id=after), metadata=AUTH
    )
    events: list[admin_pb.Event] = []
    try:
        while len(events) < count:
            events.append(await asyncio.wait_for(call.read(), 5))
    finally:
        call.cancel()
    return events


async def no_more_events(admin_stub: admin_grpc.AdminStub, after: str, ws: str = "acme") -> bool:
    """True when the stream delivers nothing after ``after`` for 1.5 s."""
    call = admin_stub.WatchEvents(
        admin_pb.WatchEventsRequest(workspace_id=ws, after_id=after), metadata=AUTH
    )
    try:
        await asyncio.wait_for(call.read(), 1.5)
    except TimeoutError:
        return True
    finally:
        call.cancel()
    return False


def kinds(events: list[admin_pb.Event]) -> list[tuple[str, int]]:
    return [(Event.Type.Name(e.type).removeprefix("TYPE_"), e.threshold_percent) for e in events]


async def act(stub: pb_grpc.EnforcerStub, **contact: str) -> pb.Decision:
    decision: pb.Decision = await stub.Activate(
        pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(**contact))
    )
    return decision


async def activate_concurrently(
    stubs: Sequence[pb_grpc.EnforcerStub], workspace: str, contacts: list[pb.Contact]
) -> list[pb.Decision]:
    """Activate every contact once, from TASKS tasks spread over ``stubs``."""
    queue: asyncio.Queue[tuple[int, pb.Contact]] = asyncio.Queue()
    for item in enumerate(contacts):
        queue.put_nowait(item)
    results: list[pb.Decision | None] = [None] * len(contacts)

    async def worker(n: int) -> None:
        stub = stubs[n % len(stubs)]
        while not queue.empty():
            i, contact = queue.get_nowait()
            request = pb.ActivateRequest(workspace_id=workspace, contact=contact)
            results[i] = await stub.Activate(request, timeout=CALL_DEADLINE)

    await asyncio.gather(*(worker(n) for n in range(TASKS)))
    return [r for r in results if r is not None]

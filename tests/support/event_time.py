"""Times, calls and reads the event-time tests share: a workspace in Berlin at November's end."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import subscribe
from tests.support.constants import AUTH

# November's last seconds in Berlin (UTC+1), and December's first instant there
LAST_SECONDS = datetime(2026, 11, 30, 22, 59, 58, tzinfo=UTC)  # 23:59:58 local
NOVEMBER_END = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)  # 00:00 on 1 December, local
KEYS = WorkspaceKeys("acme")
CLOSED = "occurred_at: period 2026-11 is closed"


def ts(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp


def person(n: int) -> pb.Contact:
    return pb.Contact(email=f"p{n}@example.com")


async def activate(
    stub: pb_grpc.EnforcerStub, n: int, occurred_at: datetime | None = None
) -> pb.Decision:
    request = pb.ActivateRequest(workspace_id="acme", contact=person(n))
    if occurred_at is not None:
        request.occurred_at.CopyFrom(ts(occurred_at))
    decision: pb.Decision = await stub.Activate(request)
    return decision


async def active_in(admin_stub: admin_grpc.AdminStub, period: str = "") -> int:
    reply = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme", period=period), metadata=AUTH
    )
    active: int = reply.usage.active
    return active


async def berlin(admin_stub: admin_grpc.AdminStub, clock: ManualClock, limit: int = 3) -> None:
    """A workspace in Berlin at ``limit``, subscribed in November's last evening."""
    clock.set(datetime(2026, 11, 30, 20, 0, tzinfo=UTC))
    await subscribe(admin_stub, plan="enterprise", custom_limit=limit, timezone="Europe/Berlin")


async def refused(call: Awaitable[Any], code: grpc.StatusCode) -> str:
    """The details of the status ``call`` fails with, which must be ``code``."""
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code
    details: str = caught.value.details() or ""
    return details

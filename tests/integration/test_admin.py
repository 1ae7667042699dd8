"""The Admin service: its token, its own address, usage and history, listing contacts."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from tests.support.calls import activate, fill, subscribe
from tests.support.constants import ADMIN_TOKEN, AUTH
from tests.support.redis_servers import free_port
from tests.support.sidecars import SidecarFactory

GET = admin_pb.GetSubscriptionRequest(workspace_id="acme")


@pytest.mark.parametrize(
    "metadata",
    [
        (),
        (("authorization", "Bearer wrong-token"),),
        (("authorization", "test-admin-token"),),
        (("authorization", "Basic test-admin-token"),),
        # two headers are refused, never read first-wins, whichever holds the token
        (("authorization", f"Bearer {ADMIN_TOKEN}"), ("authorization", "Bearer wrong-token")),
        (("authorization", "Bearer wrong-token"), ("authorization", f"Bearer {ADMIN_TOKEN}")),
        (("authorization", f"Bearer {ADMIN_TOKEN}"), ("authorization", f"Bearer {ADMIN_TOKEN}")),
    ],
)
async def test_admin_needs_the_bearer_token(
    admin_stub: admin_grpc.AdminStub, metadata: tuple[tuple[str, str], ...]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin_stub.GetSubscription(GET, metadata=metadata)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin_stub.SetSubscription(
            admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro"), metadata=metadata
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert (await admin_stub.GetSubscription(GET, metadata=AUTH)).is_default


async def test_enforcer_needs_no_token(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    assert (await activate(enforcer_stub, 1)).allowed


async def test_without_a_token_admin_answers_this_host(make_sidecar: SidecarFactory) -> None:
    await make_sidecar(admin_token="")
    assert (await make_sidecar.admin().GetSubscription(GET)).is_default


async def test_admin_on_its_own_address(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(admin_addr=f"127.0.0.1:{free_port()}")
    admin_stub = make_sidecar.admin()
    assert make_sidecar.last.admin_port != make_sidecar.last.port
    assert (await admin_stub.GetSubscription(GET, metadata=AUTH)).is_default
    async with grpc.aio.insecure_channel(f"127.0.0.1:{make_sidecar.last.port}") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin_grpc.AdminStub(channel).GetSubscription(GET, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert (await activate(stub, 1)).allowed


async def test_usage_and_history(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="pro", packs=1)
    clock.set(datetime(2026, 9, 10, tzinfo=UTC))
    await fill(enforcer_stub, 0, 30)
    clock.set(datetime(2026, 10, 10, tzinfo=UTC))
    await fill(enforcer_stub, 0, 20)
    clock.set(datetime(2026, 11, 10, tzinfo=UTC))
    await fill(enforcer_stub, 0, 7)

    reply = await admin_stub.GetUsage(admin_pb.GetUsageRequest(workspace_id="acme"), metadata=AUTH)
    assert reply.usage.period == "2026-11"
    assert (reply.usage.active, reply.usage.limit, reply.usage.plan) == (7, 3100, "pro")
    assert [(h.period, h.active, h.limit) for h in reply.history] == [
        ("2026-10", 20, 3100),
        ("2026-09", 30, 3100),
    ]
    past = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme", period="2026-09"), metadata=AUTH
    )
    assert (past.usage.period, past.usage.active, past.usage.limit) == ("2026-09", 30, 3100)
    assert past.usage.period_end.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 1, tzinfo=UTC)
    assert past.recorded
    assert reply.recorded


async def test_a_period_with_nothing_recorded_says_so(
    sidecar_app: Sidecar, admin_stub: admin_grpc.AdminStub
) -> None:
    empty = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme", period="1999-01"), metadata=AUTH
    )
    assert (empty.recorded, empty.usage.active, empty.usage.limit) == (False, 0, 0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        "usage",
        "acme",
        "--period",
        "1999-01",
        f"--addr=127.0.0.1:{sidecar_app.port}",
        f"--token={ADMIN_TOKEN}",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert "no contacts counted in 1999-01" in out.decode()
    assert "100%" not in out.decode()


@pytest.mark.parametrize(
    ("period", "field"), [("2026-13", "period:"), ("next month", "period:"), ("2027-01", "period:")]
)
async def test_usage_of_a_bad_period(
    admin_stub: admin_grpc.AdminStub, period: str, field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin_stub.GetUsage(
            admin_pb.GetUsageRequest(workspace_id="acme", period=period), metadata=AUTH
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(field)


async def test_list_active_contacts_pages_through_a_period(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=5000)
    contacts = [pb.Contact(id=f"crm-{n}") for n in range(2500)]
    reply = await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts)
    )
    expected = {d.contact_key for d in reply.decisions}
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await admin_stub.ListActiveContacts(
            admin_pb.ListActiveContactsRequest(
                workspace_id="acme", page_token=token, page_size=400
            ),
            metadata=AUTH,
        )
        assert page.total == 2500
        assert page.period == "2026-11"
        seen += page.contact_keys
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages > 3
    assert set(seen) == expected


async def test_list_refuses_bad_tokens_and_periods_no_longer_kept(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    for request, code, prefix in [
        (
            admin_pb.ListActiveContactsRequest(workspace_id="acme", page_token="abc"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_token:",
        ),
        (
            admin_pb.ListActiveContactsRequest(workspace_id="acme", page_size=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "page_size:",
        ),
        (
            admin_pb.ListActiveContactsRequest(workspace_id="acme", period="2026-07"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "the contacts of 2026-07 are no longer kept",
        ),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin_stub.ListActiveContacts(request, metadata=AUTH)
        assert caught.value.code() == code
        assert (caught.value.details() or "").startswith(prefix)


async def test_odd_input_is_invalid_argument_not_internal(admin_stub: admin_grpc.AdminStub) -> None:
    huge = admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro")
    huge.starts_at.seconds = 10**13
    cases: list[tuple[Any, Any, str]] = [
        (
            admin_stub.ListActiveContacts,
            admin_pb.ListActiveContactsRequest(workspace_id="acme", page_token="\u00b2"),
            "page_token:",
        ),
        (
            admin_stub.ListActiveContacts,
            admin_pb.ListActiveContactsRequest(workspace_id="acme", page_token=str(2**70)),
            "page_token:",
        ),
        (
            admin_stub.SetSubscription,
            admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro", timezone="Europe"),
            "timezone:",
        ),
        (admin_stub.SetSubscription, huge, "starts_at:"),
        (
            admin_stub.SetSubscription,
            admin_pb.SetSubscriptionRequest(
                workspace_id="acme", plan="pro", platform_version="\u0667.1"
            ),
            "platform_version:",
        ),
    ]
    for call, request, prefix in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, request
        assert (caught.value.details() or "").startswith(prefix)
    for after in ("\u0661\u0662-0", f"{2**70}-0"):
        stream = admin_stub.WatchEvents(
            admin_pb.WatchEventsRequest(workspace_id="acme", after_id=after), metadata=AUTH
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stream.read()
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

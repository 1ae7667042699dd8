"""The Python client against a real sidecar: values, admin token, deadlines, the unavailable
policy."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import grpc
import pytest

from sidecar.client import AsyncClient, Client, ClientOptions
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.server.app import Sidecar
from tests.support.constants import ADMIN_TOKEN
from tests.support.redis_servers import free_port


def address(sidecar_app: Sidecar) -> str:
    return f"127.0.0.1:{sidecar_app.port}"


async def test_async_client_answers_values(sidecar_app: Sidecar) -> None:
    async with AsyncClient(address(sidecar_app)) as mac:
        first = await mac.activate("acme", email="Ana@Example.com", channel="whatsapp")
        assert (first.allowed, first.reason, first.from_client) == (True, "REASON_ADMITTED", False)
        assert first.usage is not None
        assert (first.usage.period, first.usage.active, first.usage.remaining) == ("2026-11", 1, 99)
        assert first.usage.period_start == datetime(2026, 11, 1, tzinfo=UTC)
        again = await mac.check("acme", {"email": "ana@example.com"})
        assert (again.reason, again.contact_key) == ("REASON_ALREADY_ACTIVE", first.contact_key)
        batch = await mac.activate_batch("acme", [{"id": "crm-1"}, {"email": "ana@example.com"}])
        assert [d.reason for d in batch.decisions] == ["REASON_ADMITTED", "REASON_ALREADY_ACTIVE"]
        assert batch.usage is not None
        assert batch.usage.active == 2


async def test_errors_carry_the_sidecars_status(sidecar_app: Sidecar) -> None:
    async with AsyncClient(address(sidecar_app)) as mac:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mac.activate("acme", email="not an address")
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith("contact.email: ")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mac.get_subscription("acme")
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(TypeError, match="no field mail"):
        Client("127.0.0.1:1").check("acme", mail="ana@example.com")


async def test_blocking_client_with_the_admin_token(sidecar_app: Sidecar) -> None:
    def operate() -> tuple[str, int, list[str]]:
        with Client(address(sidecar_app), token=ADMIN_TOKEN) as mac:
            sub = mac.set_subscription("acme", plan="pro", packs=1, default_region="DE")
            decision = mac.activate("acme", phone="0151 1234 5678")
            usage = mac.get_usage("acme")
            events = [e.id for e in mac.watch_events("acme", seconds=0.5)]
            assert decision.allowed
            return sub.plan, usage.usage.active, events

    plan, active, events = await asyncio.to_thread(operate)
    assert (plan, active, events) == ("pro", 1, [])


async def test_the_client_carries_the_overage(sidecar_app: Sidecar) -> None:
    options = ClientOptions(token=ADMIN_TOKEN)
    async with AsyncClient(address(sidecar_app), options=options) as mac:
        sub = await mac.set_subscription(
            "acme", plan="enterprise", custom_limit=2, overage_percent=50
        )
        assert sub.overage_percent == 50
        await mac.activate_batch("acme", [{"id": "a"}, {"id": "b"}])
        checked = await mac.check_batch("acme", [{"id": "c"}, {"id": "d"}])
        assert (checked.admitted, checked.overage, checked.denied) == (0, 1, 1)
        over = await mac.activate("acme", id="c")
        assert (over.reason, over.overage) == ("REASON_ADMITTED", True)
        assert over.usage is not None
        assert (over.usage.active, over.usage.overage) == (3, 1)
        assert (await mac.get_usage("acme")).usage.overage == 1
        cleared = await mac.set_subscription("acme", clear=["overage_percent"])
        assert (cleared.custom_limit, cleared.overage_percent) == (2, 0)


async def test_the_client_carries_the_flood_guard(sidecar_app: Sidecar) -> None:
    options = ClientOptions(token=ADMIN_TOKEN)
    async with AsyncClient(address(sidecar_app), options=options) as mac:
        sub = await mac.set_subscription("acme", plan="pro", flood_guard=(1, "hold"))
        assert (sub.flood_guard.new_per_minute, sub.flood_guard.action) == (
            1,
            admin_pb.FloodGuard.ACTION_HOLD,
        )
        await mac.activate("acme", id="a")
        held = await mac.activate("acme", id="b")
        assert (held.allowed, held.reason) == (False, "REASON_RATE_LIMITED")
        report = await mac.get_usage("acme")
        assert report.flood_guard.new_per_minute == 1
        assert report.HasField("last_flood_at")
        cleared = await mac.set_subscription("acme", clear=["flood_guard"])
        assert not cleared.HasField("flood_guard")
        with pytest.raises(ValueError, match="FLAG or HOLD"):
            await mac.set_subscription("acme", flood_guard=(5, "drop"))


@pytest.mark.parametrize(("policy", "allowed"), [("allow", True), ("deny", False)])
def test_an_unreachable_sidecar_is_answered_by_the_policy(policy: str, allowed: bool) -> None:
    options = ClientOptions(deadline=0.5, retries=2, on_unavailable=policy)
    with Client(f"127.0.0.1:{free_port()}", options) as mac:
        started = time.monotonic()
        decision = mac.activate("acme", email="ana@example.com")
        batch = mac.activate_batch("acme", [{"id": "a"}, {"id": "b"}])
        elapsed = time.monotonic() - started
    assert (decision.allowed, decision.reason, decision.from_client) == (
        allowed,
        "REASON_BACKEND_UNAVAILABLE",
        True,
    )
    assert [d.allowed for d in batch.decisions] == [allowed, allowed]
    assert batch.usage is None
    assert elapsed < 2 * 0.5 + 0.5


def test_an_unreachable_sidecar_raises_by_default() -> None:
    with Client(f"127.0.0.1:{free_port()}", deadline=0.5) as mac:
        with pytest.raises(grpc.RpcError) as caught:
            mac.activate("acme", email="ana@example.com")
        assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.RpcError):
            mac.get_usage("acme")


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="on_unavailable"):
        ClientOptions(on_unavailable="maybe")
    with pytest.raises(ValueError, match="retries"):
        ClientOptions(retries=9)


async def test_a_sidecar_that_never_answers_is_answered_by_the_policy() -> None:
    writers: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)  # accepts the connection, never speaks HTTP/2
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with AsyncClient(f"127.0.0.1:{port}", deadline=0.3, on_unavailable="deny") as mac:
            started = time.monotonic()
            decision = await mac.activate("acme", email="ana@example.com")
            assert time.monotonic() - started < 1.0
        assert (decision.allowed, decision.reason, decision.from_client) == (
            False,
            "REASON_BACKEND_UNAVAILABLE",
            True,
        )
    finally:
        server.close()
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        await server.wait_closed()

"""Event time from the Python client and the CLI: ``occurred_at`` and ``--occurred-at``."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import grpc
import pytest

from sidecar.client import AsyncClient, activate_request, check_request
from sidecar.client.results import Decision
from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.server.app import Sidecar
from tests.support.commands import cli
from tests.support.event_time import LAST_SECONDS, NOVEMBER_END, active_in, berlin

# 23:59:58 on 30 November in Berlin, as the caller's own offset writes it
BERLIN_LAST_SECONDS = LAST_SECONDS.astimezone(timezone(timedelta(hours=1)))


async def test_the_client_sends_occurred_at_on_every_decision_call(
    sidecar_app: Sidecar, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await berlin(admin_stub, clock, limit=10)
    clock.set(NOVEMBER_END + timedelta(seconds=3))
    async with AsyncClient(f"127.0.0.1:{sidecar_app.port}") as mac:
        late = await mac.activate("acme", email="ana@example.com", occurred_at=BERLIN_LAST_SECONDS)
        assert late.usage is not None
        assert (late.reason, late.usage.period) == ("REASON_ADMITTED", "2026-11")
        again = await mac.check("acme", {"email": "ana@example.com"}, occurred_at=LAST_SECONDS)
        assert again.reason == "REASON_ALREADY_ACTIVE"
        batch = await mac.activate_batch("acme", [{"id": "crm-1"}], occurred_at=LAST_SECONDS)
        assert batch.usage is not None
        assert (batch.usage.period, batch.usage.active) == ("2026-11", 2)
        fits = await mac.check_batch("acme", [{"id": "crm-2"}], occurred_at=LAST_SECONDS)
        assert (fits.admitted, fits.usage.period) == (1, "2026-11")
        answers = [
            a
            async for a in mac.activate_stream(
                [
                    activate_request("acme", id="crm-3", occurred_at=LAST_SECONDS),
                    check_request("acme", {"id": "crm-3"}),
                ]
            )
        ]
        assert isinstance(answers[0], Decision)
        assert isinstance(answers[1], Decision)
        assert answers[0].usage is not None
        assert answers[1].usage is not None
        assert (answers[0].reason, answers[0].usage.period) == ("REASON_ADMITTED", "2026-11")
        assert (answers[1].reason, answers[1].usage.period) == ("REASON_WITHIN_LIMIT", "2026-12")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await mac.activate("acme", id="x", occurred_at=LAST_SECONDS - timedelta(days=31))
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert caught.value.details() == "occurred_at: period 2026-10 is closed"
        with pytest.raises(ValueError, match="occurred_at needs a time zone"):
            await mac.activate("acme", id="x", occurred_at=datetime(2026, 11, 30, 23, 59))
    assert await active_in(admin_stub, "2026-11") == 3


async def test_the_cli_takes_occurred_at(
    sidecar_app: Sidecar, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await berlin(admin_stub, clock)
    clock.set(NOVEMBER_END + timedelta(seconds=3))
    addr = f"--addr=127.0.0.1:{sidecar_app.port}"
    code, out, _ = await cli(
        "activate", "acme", "--id", "x", "--occurred-at", "2026-11-30T23:59:58+01:00", addr
    )
    assert code == 0
    assert "2026-11" in out
    assert await active_in(admin_stub, "2026-11") == 1
    code, out, err = await cli(
        "check", "acme", "--id", "y", "--occurred-at", "2026-11-30T20:00:00", addr
    )  # UTC without an offset
    assert code == 0
    assert "2026-11" in out
    code, out, err = await cli(
        "activate", "acme", "--id", "y", "--occurred-at", "2026-10-30T12:00Z", addr
    )
    assert code == 2
    assert err.strip() == "error: FAILED_PRECONDITION: occurred_at: period 2026-10 is closed"
    code, out, err = await cli("activate", "acme", "--id", "y", "--occurred-at", "yesterday", addr)
    assert code == 2
    assert out == ""
    assert "--occurred-at: 'yesterday' is not an ISO 8601 time" in err
    assert await active_in(admin_stub, "2026-11") == 1
    assert await active_in(admin_stub) == 0

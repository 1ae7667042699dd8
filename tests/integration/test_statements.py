"""Admin.ListStatements and `sidecar statements`: one final statement per workspace and closed
period, paged over every workspace, never changed once the period is closed."""

from __future__ import annotations

import asyncio
import csv
import json
from datetime import UTC, datetime, timedelta

import grpc
import pytest
import redis

from sidecar.domain.clock import ManualClock
from sidecar.domain.contact import ContactFields
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import fill, subscribe
from tests.support.commands import cli
from tests.support.constants import ADMIN_TOKEN, AUTH

# November has closed in every time zone (UTC-12's midnight) and its lateness has passed.
CLOSED_EVERYWHERE = datetime(2026, 12, 1, 12, 5, tzinfo=UTC)


async def list_all(
    admin_stub: admin_grpc.AdminStub, period: str = "2026-11", page_size: int = 0
) -> tuple[list[admin_pb.Statement], int]:
    """Every statement of ``period``, and the pages it took (none larger than asked)."""
    found: list[admin_pb.Statement] = []
    token, pages = "", 0
    while True:
        page = await admin_stub.ListStatements(
            admin_pb.ListStatementsRequest(period=period, page_size=page_size, page_token=token),
            metadata=AUTH,
        )
        pages += 1
        assert len(page.statements) <= (page_size or 100)
        found.extend(page.statements)
        token = page.next_page_token
        if not token:
            return found, pages


def by_workspace(statements: list[admin_pb.Statement]) -> dict[str, list[admin_pb.Statement]]:
    found: dict[str, list[admin_pb.Statement]] = {}
    for statement in statements:
        found.setdefault(statement.workspace_id, []).append(statement)
    return found


async def test_statements_of_1000_workspaces_page_correctly(
    sidecar_app: Sidecar,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    workspaces = [f"ws-{n:04d}" for n in range(1000)]
    gate = asyncio.Semaphore(16)

    async def count(n: int) -> None:
        contacts = [ContactFields(email=f"p{i}@example.com") for i in range(n % 3 + 1)]
        async with gate:
            await sidecar_app.enforcer.activate_batch(workspaces[n], contacts)

    await asyncio.gather(*(count(n) for n in range(len(workspaces))))
    clock.set(CLOSED_EVERYWHERE)

    statements, pages = await list_all(admin_stub, page_size=100)
    assert pages >= 10
    assert sorted(s.workspace_id for s in statements) == workspaces  # each exactly once
    assert all(s.active == int(s.workspace_id[3:]) % 3 + 1 for s in statements)
    assert all(s.period == "2026-11" and s.limit == 100 for s in statements)
    assert all(s.closed_at.ToDatetime(tzinfo=UTC) == CLOSED_EVERYWHERE for s in statements)
    # the listing closed every period: one event each
    assert sum(redis_db.xlen(WorkspaceKeys(ws).events) for ws in workspaces[:50]) == 50

    # listed again, later and in other page sizes: the same statements
    clock.advance(timedelta(days=3))
    again, _ = await list_all(admin_stub, page_size=7 * 37)
    assert sorted(again, key=lambda s: s.workspace_id) == sorted(
        statements, key=lambda s: s.workspace_id
    )


async def test_a_statement_carries_the_plan_trial_time_zone_and_a_mid_month_start(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
) -> None:
    clock.set(datetime(2026, 11, 5, tzinfo=UTC))
    await fill(enforcer_stub, 0, 2, ws="split")
    starts = datetime(2026, 11, 10, tzinfo=UTC)
    split_start = admin_pb.SetSubscriptionRequest(workspace_id="split", plan="enterprise")
    split_start.starts_at.FromDatetime(starts)
    await admin_stub.SetSubscription(split_start, metadata=AUTH)
    await subscribe(admin_stub, "berlin", plan="enterprise", timezone="Europe/Berlin")
    trial = await subscribe(admin_stub, "trial", plan="starter", platform_version="7.0.0")

    clock.set(datetime(2026, 11, 15, tzinfo=UTC))
    await fill(enforcer_stub, 10, 3, ws="split")
    await fill(enforcer_stub, 0, 4, ws="berlin")
    await fill(enforcer_stub, 0, trial.effective_limit, ws="trial")
    over = pb.ActivateRequest(workspace_id="trial", contact=pb.Contact(email="over@example.com"))
    assert (await enforcer_stub.Activate(over)).reason == pb.REASON_TRIAL_STARTED
    running = await admin_stub.GetSubscription(
        admin_pb.GetSubscriptionRequest(workspace_id="trial"), metadata=AUTH
    )
    trial_ends = running.trial_ends_at.ToDatetime(tzinfo=UTC)

    clock.set(CLOSED_EVERYWHERE)
    found = by_workspace((await list_all(admin_stub))[0])
    assert set(found) == {"split", "berlin", "trial"}

    before, after = found["split"]
    assert (before.active, after.active) == (2, 3)
    assert before.period_start.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 1, tzinfo=UTC)
    assert before.period_end.ToDatetime(tzinfo=UTC) == starts
    assert after.period_start.ToDatetime(tzinfo=UTC) == starts
    assert after.period_end.ToDatetime(tzinfo=UTC) == datetime(2026, 12, 1, tzinfo=UTC)
    assert {before.period, after.period} == {"2026-11"}

    (berlin,) = found["berlin"]
    assert berlin.period_start.ToDatetime(tzinfo=UTC) == datetime(2026, 10, 31, 23, tzinfo=UTC)
    assert berlin.period_end.ToDatetime(tzinfo=UTC) == datetime(2026, 11, 30, 23, tzinfo=UTC)
    assert (berlin.active, berlin.plan, berlin.trial_plan) == (4, "enterprise", "")
    assert not berlin.HasField("trial_ends_at")

    (trialled,) = found["trial"]
    assert trialled.active == trial.effective_limit + 1
    assert (trialled.plan, trialled.trial_plan) == ("starter", trial.trial_plan)
    assert trialled.limit == trial.trial_limit
    assert trialled.trial_ends_at.ToDatetime(tzinfo=UTC) == trial_ends


async def test_a_statement_carries_the_packs_and_the_overage_billed(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
) -> None:
    await subscribe(admin_stub, "over", plan="enterprise", custom_limit=5, overage_percent=40)
    await fill(enforcer_stub, 0, 7, ws="over")  # 5 within the limit, 2 in overage
    denied = await enforcer_stub.Activate(
        pb.ActivateRequest(workspace_id="over", contact=pb.Contact(email="eighth@example.com"))
    )
    assert denied.reason == pb.REASON_LIMIT_REACHED
    await subscribe(admin_stub, "packed", plan="enterprise", custom_limit=5, packs=1)
    await fill(enforcer_stub, 0, 2, ws="packed")
    clock.set(CLOSED_EVERYWHERE)
    found = by_workspace((await list_all(admin_stub))[0])
    ((over,), (packed,)) = found["over"], found["packed"]
    assert (over.active, over.limit, over.overage, over.packs) == (7, 5, 2, 0)
    assert (packed.active, packed.overage, packed.packs) == (2, 0, 1)
    assert packed.limit > 5


async def test_a_late_activate_merge_and_exemption_leave_a_statement_alone(
    settings: Settings,
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
    redis_db: redis.Redis,
) -> None:
    await fill(enforcer_stub, 0, 3)
    clock.set(CLOSED_EVERYWHERE)
    ((statement,), _) = await list_all(admin_stub)
    assert statement.active == 3

    # a replica whose clock is behind still decides in November: refused, nothing counted
    behind = Sidecar(settings, ManualClock(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)))
    await behind.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{behind.port}") as channel:
            late = pb.ActivateRequest(
                workspace_id="acme", contact=pb.Contact(email="late@example.com")
            )
            with pytest.raises(grpc.RpcError) as refused:
                await pb_grpc.EnforcerStub(channel).Activate(late)
    finally:
        await behind.stop()
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "period 2026-11 is closed" in (refused.value.details() or "")
    # an event of November sent now, after the close: refused, nothing counted
    late_event = pb.ActivateRequest(
        workspace_id="acme", contact=pb.Contact(email="queued@example.com")
    )
    late_event.occurred_at.FromDatetime(datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC))
    with pytest.raises(grpc.RpcError) as refused_event:
        await enforcer_stub.Activate(late_event)
    assert refused_event.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert refused_event.value.details() == "occurred_at: period 2026-11 is closed"
    # counted again in December, then merged: December's count drops, November's stays
    await fill(enforcer_stub, 0, 2)
    await admin_stub.Merge(
        admin_pb.MergeRequest(
            workspace_id="acme",
            target=pb.Contact(email="p0@example.com"),
            sources=[pb.Contact(email="p1@example.com")],
        ),
        metadata=AUTH,
    )
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(
            workspace_id="acme", contacts=[pb.Contact(email="p2@example.com")], exempt=True
        ),
        metadata=AUTH,
    )
    ((unchanged,), _) = await list_all(admin_stub)
    assert unchanged == statement
    assert redis_db.hget(WorkspaceKeys("acme").counts, "2026-11") == b"3"
    usage = await admin_stub.GetUsage(
        admin_pb.GetUsageRequest(workspace_id="acme", period="2026-11"), metadata=AUTH
    )
    assert (usage.usage.active, usage.closed) == (3, True)


async def test_a_period_not_closed_everywhere_yet_is_failed_precondition(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await fill(enforcer_stub, 0, 1)
    for period, at in (
        ("2026-11", CLOSED_EVERYWHERE - timedelta(seconds=1)),
        ("2026-12", CLOSED_EVERYWHERE),
    ):
        clock.set(at)
        with pytest.raises(grpc.RpcError) as refused:
            await admin_stub.ListStatements(
                admin_pb.ListStatementsRequest(period=period), metadata=AUTH
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert f"period {period} is not closed yet" in (refused.value.details() or "")
    assert len((await list_all(admin_stub))[0]) == 1


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"period": "2026-13"}, "period"),
        ({"period": "nov"}, "period"),
        ({"period": ""}, "period"),
        ({"period": "2026-11", "page_size": -1}, "page_size"),
        ({"period": "2026-11", "page_size": 1001}, "page_size"),
        ({"period": "2026-11", "page_token": "garbage!"}, "page_token"),
        ({"period": "2026-11", "page_token": "123"}, "page_token"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    admin_stub: admin_grpc.AdminStub,
    clock: ManualClock,
    request_fields: dict[str, object],
    field: str,
) -> None:
    clock.set(CLOSED_EVERYWHERE)
    with pytest.raises(grpc.RpcError) as refused:
        await admin_stub.ListStatements(
            admin_pb.ListStatementsRequest(**request_fields),  # type: ignore[arg-type]
            metadata=AUTH,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(f"{field}: ")


async def test_a_page_token_of_another_months_listing_is_refused(
    sidecar_app: Sidecar, admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    for n in range(5):
        await sidecar_app.enforcer.activate_batch(f"ws-{n}", [ContactFields(id="x")])
    clock.set(CLOSED_EVERYWHERE)
    page = await admin_stub.ListStatements(
        admin_pb.ListStatementsRequest(period="2026-11", page_size=2), metadata=AUTH
    )
    assert page.next_page_token
    with pytest.raises(grpc.RpcError) as refused:
        await admin_stub.ListStatements(
            admin_pb.ListStatementsRequest(period="2026-10", page_token=page.next_page_token),
            metadata=AUTH,
        )
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("page_token: ")


async def test_the_cli_writes_statements_as_csv_and_json(
    sidecar_app: Sidecar, clock: ManualClock
) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    for n in range(12):
        contacts = [ContactFields(id=f"c{i}") for i in range(n + 1)]
        await sidecar_app.enforcer.activate_batch(f"ws-{n:02d}", contacts)
    code, _, err = await cli("statements", "--period", "2026-11", *conn)
    assert code == 2
    assert "FAILED_PRECONDITION: period 2026-11 is not closed yet" in err

    clock.set(CLOSED_EVERYWHERE)
    code, out, err = await cli("statements", "--period", "2026-11", "--page-size", "5", *conn)
    assert code == 0
    assert "wrote 12 statements of 2026-11" in err
    rows = list(csv.DictReader(out.splitlines()))
    assert [r["workspace_id"] for r in sorted(rows, key=lambda r: r["workspace_id"])] == [
        f"ws-{n:02d}" for n in range(12)
    ]
    first = next(r for r in rows if r["workspace_id"] == "ws-03")
    assert (first["period"], first["active"], first["limit"], first["plan"]) == (
        "2026-11",
        "4",
        "100",
        "enterprise",
    )
    assert first["period_start"] == "2026-11-01T00:00:00Z"
    assert first["closed_at"] == "2026-12-01T12:05:00Z"

    code, out, _ = await cli("statements", "--period", "2026-11", "--format", "json", *conn)
    assert code == 0
    listed = json.loads(out)
    assert sorted(s["workspace_id"] for s in listed) == [f"ws-{n:02d}" for n in range(12)]
    assert {s["active"] for s in listed} == set(range(1, 13))

    code, _, err = await cli("statements", "--period", "2026-1", *conn)
    assert code == 2
    assert "INVALID_ARGUMENT: period: expected YYYY-MM" in err


async def test_the_cli_usage_of_a_closed_month_says_its_count_is_final(
    sidecar_app: Sidecar, clock: ManualClock
) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    await sidecar_app.enforcer.activate_batch("acme", [ContactFields(id="c1")])
    code, out, _ = await cli("usage", "acme", "--period", "2026-11", *conn)
    assert code == 0
    assert "closed" not in out
    clock.set(CLOSED_EVERYWHERE)
    code, out, _ = await cli("usage", "acme", "--period", "2026-11", *conn)
    assert code == 0
    assert "closed      2026-12-01 12:05 UTC: the count is final" in out

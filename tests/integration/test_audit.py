"""The audit trail through the real gRPC server and Redis: what SetSubscription, Merge and
SetExempt record, ListAuditRecords' pages, the retention, and `sidecar audit`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import redis
from google.protobuf.timestamp_pb2 import Timestamp

from sidecar.client import AsyncClient, Client
from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import subscribe
from tests.support.commands import cli
from tests.support.constants import ADMIN_TOKEN, AUTH
from tests.support.sidecars import SidecarFactory


async def records(
    admin_stub: admin_grpc.AdminStub, ws: str = "acme", **request: Any
) -> admin_pb.ListAuditRecordsResponse:
    response: admin_pb.ListAuditRecordsResponse = await admin_stub.ListAuditRecords(
        admin_pb.ListAuditRecordsRequest(workspace_id=ws, **request), metadata=AUTH
    )
    return response


def changes(record: admin_pb.AuditRecord) -> list[tuple[str, str, str]]:
    return [(c.field, c.before, c.after) for c in record.changes]


def stream_bytes(redis_db: redis.Redis, ws: str = "acme") -> bytes:
    """Every id, field and value of the workspace's audit stream, joined."""
    entries: Any = redis_db.xrange(WorkspaceKeys(ws).audit)
    return b"".join(i + b"".join(k + v for k, v in f.items()) for i, f in entries)


async def test_a_subscription_change_records_each_field_before_and_after(
    admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="pro", packs=1)
    clock.advance(timedelta(minutes=5))
    starts = Timestamp()
    starts.FromDatetime(datetime(2026, 11, 1, tzinfo=UTC))
    await subscribe(
        admin_stub,
        plan="pro",
        packs=3,
        shadow_mode=True,
        overage_percent=10,
        starts_at=starts,
        thresholds=[50, 90],
    )
    newest, first = (await records(admin_stub)).records
    assert (newest.admin, newest.method, newest.workspace_id, newest.changed) == (
        "admin",
        "SetSubscription",
        "acme",
        True,
    )
    assert newest.at.ToDatetime().replace(tzinfo=clock.now().tzinfo) == clock.now()
    assert changes(newest) == [
        ("packs", "1", "3"),
        ("starts_at", "", "2026-11-01T00:00:00Z"),
        ("shadow_mode", "false", "true"),
        ("thresholds", "", "50,90"),
        ("overage_percent", "0", "10"),
    ]
    assert first.changed
    assert ("plan", "", "pro") in changes(first)
    # the limit and the trial follow from the plan and the packs: not what an admin changed
    assert not {"limit", "major", "updated_at", "trial_plan"} & {c.field for c in first.changes}
    assert newest.id > first.id


async def test_a_flood_guard_change_is_recorded_under_the_api_names(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    await subscribe(admin_stub, plan="pro")
    guard = admin_pb.FloodGuard(new_per_minute=100, action=admin_pb.FloodGuard.ACTION_HOLD)
    await subscribe(admin_stub, flood_guard=guard)
    newest, _ = (await records(admin_stub)).records
    assert changes(newest) == [
        ("flood_guard.new_per_minute", "0", "100"),
        ("flood_guard.action", "", "HOLD"),
    ]


async def test_the_same_values_again_record_a_change_of_nothing(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    await subscribe(admin_stub, plan="pro", packs=2)
    await subscribe(admin_stub, packs=2)
    again, _ = (await records(admin_stub)).records
    assert (again.method, again.changed, list(again.changes)) == ("SetSubscription", False, [])


async def test_a_merge_and_an_exemption_record_counts_and_no_identifier(
    admin_stub: admin_grpc.AdminStub, enforcer_stub: pb_grpc.EnforcerStub, redis_db: redis.Redis
) -> None:
    ana, bea, cid = (pb.Contact(email=f"{n}@example.com") for n in ("ana", "bea", "cid"))
    await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=[ana, bea, cid])
    )
    merged = await admin_stub.Merge(
        admin_pb.MergeRequest(workspace_id="acme", sources=[bea], target=ana), metadata=AUTH
    )
    exempted = await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(workspace_id="acme", contacts=[cid, ana], exempt=True),
        metadata=AUTH,
    )
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(workspace_id="acme", contacts=[cid], exempt=True),
        metadata=AUTH,
    )
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(workspace_id="acme", contacts=[cid], exempt=False),
        metadata=AUTH,
    )
    countable, again, exempt, merge = (await records(admin_stub)).records
    assert (merge.method, merge.changed, changes(merge)) == (
        "Merge",
        True,
        [("identities_folded", "", "1"), ("uncounted", "", "1")],
    )
    assert (exempt.method, changes(exempt)) == ("SetExempt", [("contacts_exempted", "", "2")])
    assert (again.changed, list(again.changes)) == (False, [])
    assert changes(countable) == [("contacts_countable", "", "1")]
    written = stream_bytes(redis_db)
    keys = [merged.contact_key, *exempted.contact_keys]
    assert len(keys) == 3
    for key in keys:
        assert bytes.fromhex(key) not in written
        assert key.encode() not in written
    assert b"example.com" not in written


async def test_pages_go_newest_first_and_give_each_record_once(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    await subscribe(admin_stub, plan="pro", packs=1)
    for _ in range(249):
        await subscribe(admin_stub, packs=1)
    seen: list[admin_pb.AuditRecord] = []
    token, pages = "", 0
    while True:
        page = await records(admin_stub, page_size=100, page_token=token)
        pages += 1
        seen.extend(page.records)
        token = page.next_page_token
        if not token:
            break
    assert (pages, len(seen), len({r.id for r in seen})) == (3, 250, 250)
    ids = [tuple(int(part) for part in r.id.split("-")) for r in seen]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert [r.changed for r in seen] == [False] * 249 + [True]  # the first set the plan
    assert len((await records(admin_stub)).records) == 100  # the default page


async def test_since_bounds_the_oldest_record_listed(
    admin_stub: admin_grpc.AdminStub, clock: ManualClock
) -> None:
    await subscribe(admin_stub, plan="pro", packs=1)
    clock.advance(timedelta(hours=1))
    since = Timestamp()
    since.FromDatetime(clock.now())
    await subscribe(admin_stub, packs=2)
    clock.advance(timedelta(hours=1))
    await subscribe(admin_stub, packs=3)
    listed = (await records(admin_stub, since=since)).records
    assert [r.changes[0].after for r in listed] == ["3", "2"]


async def test_records_older_than_the_retention_are_neither_kept_nor_listed(
    make_sidecar: SidecarFactory, clock: ManualClock, redis_db: redis.Redis
) -> None:
    await make_sidecar(audit_retention_days=1)
    admin_stub = make_sidecar.admin()
    await subscribe(admin_stub, plan="pro", packs=1)
    clock.advance(timedelta(hours=23))
    await subscribe(admin_stub, packs=2)
    clock.advance(timedelta(hours=2))
    # the first is past the retention: no longer listed, though nothing trimmed it yet
    assert [r.changes[0].after for r in (await records(admin_stub)).records] == ["2"]
    await subscribe(admin_stub, packs=3)
    assert redis_db.xlen(WorkspaceKeys("acme").audit) == 2  # the next change trimmed it
    assert [r.changes[0].after for r in (await records(admin_stub)).records] == ["3", "2"]


async def test_a_refused_call_records_nothing(
    admin_stub: admin_grpc.AdminStub, redis_db: redis.Redis
) -> None:
    refused = [
        admin_stub.SetSubscription(
            admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro", timezone="Mars/Base"),
            metadata=AUTH,
        ),
        admin_stub.SetSubscription(
            admin_pb.SetSubscriptionRequest(workspace_id="acme", plan="pro"),
            metadata=(("authorization", "Bearer wrong"),),
        ),
        admin_stub.Merge(
            admin_pb.MergeRequest(workspace_id="acme", target=pb.Contact(id="a")), metadata=AUTH
        ),
        admin_stub.SetExempt(
            admin_pb.SetExemptRequest(
                workspace_id="acme", contacts=[pb.Contact(email="nope")], exempt=True
            ),
            metadata=AUTH,
        ),
    ]
    for call in refused:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() in (
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.UNAUTHENTICATED,
        )
    assert not redis_db.exists(WorkspaceKeys("acme").audit)
    assert list((await records(admin_stub)).records) == []


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"workspace_id": "bad workspace!"}, "workspace_id"),
        ({"page_size": -1}, "page_size"),
        ({"page_size": 1001}, "page_size"),
        ({"page_token": "not-a-token"}, "page_token"),
        ({"since": Timestamp(seconds=-(10**12))}, "since"),
        ({"since": Timestamp(seconds=0, nanos=-1)}, "since"),
    ],
)
async def test_bad_input_is_invalid_argument_naming_the_field(
    admin_stub: admin_grpc.AdminStub, request_fields: dict[str, Any], field: str
) -> None:
    request = admin_pb.ListAuditRecordsRequest(**{"workspace_id": "acme", **request_fields})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await admin_stub.ListAuditRecords(request, metadata=AUTH)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"{field}: ")


async def test_a_page_token_of_another_workspace_is_refused(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    for _ in range(3):
        await subscribe(admin_stub, "other", plan="pro")
    token = (await records(admin_stub, "other", page_size=1)).next_page_token
    assert token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await records(admin_stub, "acme", page_token=token)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "page_token: is a token of the audit records of other" in (caught.value.details() or "")


async def test_the_cli_lists_the_trail_as_a_table_and_as_json(
    sidecar_app: Sidecar, clock: ManualClock
) -> None:
    await subscribe_in(sidecar_app, plan="pro", packs=1)
    clock.advance(timedelta(minutes=1))
    await subscribe_in(sidecar_app, plan="pro", packs=2)
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    code, out, err = await cli("audit", "acme", *conn)
    assert code == 0, err
    header, newest, first = out.splitlines()
    assert header.split() == ["TIME", "ADMIN", "METHOD", "CHANGED", "CHANGES"]
    assert newest.startswith("2026-11-15 12:01:00 UTC  admin")
    assert newest.endswith("SetSubscription  yes      packs: 1 -> 2")
    assert "plan: (none) -> pro" in first
    code, out, err = await cli("audit", "acme", "--json", "--since", "2026-11-15T12:00:30Z", *conn)
    assert code == 0, err
    (record,) = json.loads(out)
    assert (record["admin"], record["method"], record["changed"]) == (
        "admin",
        "SetSubscription",
        True,
    )
    assert record["changes"] == [{"field": "packs", "before": "1", "after": "2"}]
    code, out, _ = await cli("audit", "acme", "--limit", "1", "--json", *conn)
    assert [r["changes"][0]["after"] for r in json.loads(out)] == ["2"]


async def subscribe_in(sidecar_app: Sidecar, **fields: Any) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar_app.port}") as channel:
        await subscribe(admin_grpc.AdminStub(channel), **fields)


async def test_the_python_clients_page_through_the_trail(
    sidecar_app: Sidecar, clock: ManualClock
) -> None:
    addr = f"127.0.0.1:{sidecar_app.port}"
    async with AsyncClient(addr, token=ADMIN_TOKEN) as mac:
        await mac.set_subscription("acme", plan="pro", packs=1)
        clock.advance(timedelta(minutes=1))
        for packs in (2, 3, 4):
            await mac.set_subscription("acme", packs=packs)
        page = await mac.list_audit_records("acme", page_size=2)
        assert [r.changes[0].after for r in page.records] == ["4", "3"]
        assert page.next_page_token
        every = [r.id async for r in mac.audit_records("acme", page_size=3)]
        assert len(every) == len(set(every)) == 4
        since = clock.now()

    def blocking() -> list[str]:
        with Client(addr, token=ADMIN_TOKEN) as mac:
            with pytest.raises(ValueError, match="since needs a time zone"):
                mac.list_audit_records("acme", since=since.replace(tzinfo=None))
            return [r.changes[0].after for r in mac.audit_records("acme", since, page_size=1)]

    assert await asyncio.to_thread(blocking) == ["4", "3", "2"]

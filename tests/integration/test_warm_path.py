"""The warm path (contacts this process knows are counted answered without Redis, within the
freshness bound) and coalesced decisions (one script call for the concurrent decisions of one
workspace), through a real grpc.aio server on a real Redis."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import redis
from prometheus_client import REGISTRY

from sidecar.domain.clock import ManualClock
from sidecar.domain.contact import ContactFields
from sidecar.domain.decision import Reason
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.storage.keys import WorkspaceKeys
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory


def decide_calls() -> float:
    return REGISTRY.get_sample_value("mac_redis_round_trips_total", {"operation": "decide"}) or 0.0


async def act(stub: object, ws: str = "acme", **contact: str) -> pb.Decision:
    decision: pb.Decision = await stub.Activate(  # type: ignore[attr-defined]
        pb.ActivateRequest(workspace_id=ws, contact=pb.Contact(**contact))
    )
    return decision


async def test_a_known_contact_is_answered_without_redis_while_fresh(
    make_sidecar: SidecarFactory, clock: ManualClock
) -> None:
    stub = await make_sidecar(warm_seconds=1.0)
    first = await act(stub, email="ana@example.com")
    assert first.reason == pb.REASON_ADMITTED
    before = decide_calls()
    again = await act(stub, email="ana@example.com")
    assert (again.reason, again.contact_key) == (pb.REASON_ALREADY_ACTIVE, first.contact_key)
    assert again.from_local_record
    assert again.usage.active == 1
    check = await stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(email="ana@example.com"))
    )
    assert check.reason == pb.REASON_ALREADY_ACTIVE
    assert decide_calls() == before  # neither reached Redis
    clock.advance(timedelta(seconds=1))  # the workspace's last reply is no longer fresh
    await act(stub, email="ana@example.com")
    assert decide_calls() == before + 1


async def test_it_is_off_with_zero_seconds(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(warm_seconds=0.0)
    await act(stub, id="crm-1")
    before = decide_calls()
    await act(stub, id="crm-1")
    assert decide_calls() == before + 1


async def test_a_new_identifier_beside_a_known_one_goes_to_redis_and_is_linked(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(warm_seconds=1.0)
    ana = await act(stub, email="ana@example.com")
    before = decide_calls()
    both = await act(stub, email="ana@example.com", phone="+4915112345678")
    assert decide_calls() == before + 1  # the phone had to be linked
    assert (both.reason, both.contact_key) == (pb.REASON_ALREADY_ACTIVE, ana.contact_key)
    phone = await act(stub, phone="+4915112345678")
    assert (phone.reason, phone.contact_key) == (pb.REASON_ALREADY_ACTIVE, ana.contact_key)


async def test_a_new_period_is_never_answered_from_the_last(
    make_sidecar: SidecarFactory, clock: ManualClock, redis_db: redis.Redis
) -> None:
    stub = await make_sidecar(warm_seconds=60.0)
    clock.set(datetime(2026, 11, 30, 23, 59, 59, 900_000, tzinfo=UTC))
    await act(stub, id="crm-1")
    clock.set(datetime(2026, 12, 1, 0, 0, 0, 100_000, tzinfo=UTC))
    december = await act(stub, id="crm-1")
    assert december.reason == pb.REASON_ADMITTED
    assert december.usage.period == "2026-12"
    assert redis_db.scard(WorkspaceKeys("acme").members("2026-12")) == 1


async def test_an_exemption_reaches_the_warm_path_with_the_next_reply(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(warm_seconds=60.0)
    admin = make_sidecar.admin()
    await act(stub, id="bot-1")
    await admin.SetExempt(
        admin_pb.SetExemptRequest(
            workspace_id="acme", contacts=[pb.Contact(id="bot-1")], exempt=True
        ),
        metadata=AUTH,
    )
    await act(stub, id="someone-else")  # any reply for the workspace carries the change
    after = await act(stub, id="bot-1")
    assert after.reason == pb.REASON_EXEMPT


async def test_a_merge_reaches_the_warm_path_with_the_next_reply(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(warm_seconds=60.0)
    admin = make_sidecar.admin()
    ana = await act(stub, email="ana@example.com")
    await act(stub, phone="+4915112345678")
    merged = await admin.Merge(
        admin_pb.MergeRequest(
            workspace_id="acme",
            sources=[pb.Contact(phone="+4915112345678")],
            target=pb.Contact(email="ana@example.com"),
        ),
        metadata=AUTH,
    )
    assert merged.uncounted == 1
    await act(stub, id="someone-else")
    phone = await act(stub, phone="+4915112345678")
    assert (phone.reason, phone.contact_key) == (pb.REASON_ALREADY_ACTIVE, ana.contact_key)
    assert phone.usage.active == 2  # ana and someone-else: the folded phone is not counted


async def test_concurrent_decisions_of_one_workspace_share_script_calls_and_stay_exact(
    make_sidecar: SidecarFactory, redis_db: redis.Redis
) -> None:
    stub = await make_sidecar(default_limit=50, warm_seconds=0.0)
    decisions = await asyncio.gather(*(act(stub, id=f"c{n}") for n in range(200)))
    admitted = [d for d in decisions if d.reason == pb.REASON_ADMITTED]
    assert len(admitted) == 50
    assert sum(d.reason == pb.REASON_LIMIT_REACHED for d in decisions) == 150
    assert redis_db.scard(WorkspaceKeys("acme").members("2026-11")) == 50
    members: set[bytes] = redis_db.smembers(WorkspaceKeys("acme").members("2026-11"))  # type: ignore[assignment]
    assert {d.contact_key for d in admitted} == {k.hex() for k in members}

    # How many calls reach the server in one event-loop turn depends on the machine's load;
    # decisions started in one turn are sure to share script calls.
    enforcer = make_sidecar.last.enforcer
    before = decide_calls()
    started = [enforcer.activate("beta", ContactFields(id=f"c{n}")) for n in range(200)]
    decided = await asyncio.gather(*started)
    assert sum(d.reason is Reason.ADMITTED for d in decided) == 50
    assert redis_db.scard(WorkspaceKeys("beta").members("2026-11")) == 50
    assert decide_calls() - before < 200  # coalesced: fewer script calls than decisions


async def test_a_stream_answers_known_contacts_at_once_and_in_order(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(warm_seconds=1.0)
    await act(stub, id="known")
    before = decide_calls()
    requests = []
    for n in range(20):
        who = "known" if n % 2 else f"new-{n}"
        requests.append(
            pb.ActivateStreamRequest(
                activate=pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(id=who)),
                tag=n,
            )
        )
    call = stub.ActivateStream(iter(requests))
    answers = [answer async for answer in call]
    assert [a.tag for a in answers] == list(range(20))
    known = [a.decision for a in answers if a.tag % 2]
    assert all(d.reason == pb.REASON_ALREADY_ACTIVE and d.from_local_record for d in known)
    new = [a.decision for a in answers if not a.tag % 2]
    assert all(d.reason == pb.REASON_ADMITTED and not d.from_local_record for d in new)
    assert decide_calls() - before <= 10  # only the new contacts went to Redis


async def test_a_warm_path_that_fails_is_counted_and_leaves_the_call_to_redis(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(warm_seconds=1.0)
    known = await act(stub, email="known@example.com")

    def broken(
        workspace_id: str, contact: ContactFields, occurred_at: datetime | None = None
    ) -> None:
        raise RuntimeError("the record is unreadable")

    make_sidecar.last.warm.answer = broken  # type: ignore[method-assign]
    errors, decided = warm_errors(), decide_calls()
    again = await act(stub, email="known@example.com")
    new = await act(stub, email="new@example.com")
    streamed = [r async for r in stub.ActivateStream(iter([_stream_activate("known@example.com")]))]
    assert (again.reason, again.contact_key) == (pb.REASON_ALREADY_ACTIVE, known.contact_key)
    assert not again.from_local_record  # Redis answered
    assert new.reason == pb.REASON_ADMITTED
    assert streamed[0].decision.reason == pb.REASON_ALREADY_ACTIVE
    assert not streamed[0].decision.from_local_record
    assert warm_errors() - errors == 3
    assert decide_calls() - decided == 3  # each decided by Redis instead


def warm_errors() -> float:
    return REGISTRY.get_sample_value("mac_warm_path_errors_total") or 0.0


def _stream_activate(email: str) -> pb.ActivateStreamRequest:
    contact = pb.Contact(email=email)
    return pb.ActivateStreamRequest(
        activate=pb.ActivateRequest(workspace_id="acme", contact=contact)
    )

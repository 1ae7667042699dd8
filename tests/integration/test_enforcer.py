"""Check, Activate and ActivateBatch through a real gRPC channel against a real Redis."""

from __future__ import annotations

import grpc
import pytest
import redis

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.sidecars import SidecarFactory


def email(n: int) -> pb.Contact:
    return pb.Contact(email=f"person{n}@example.com")


async def activate(
    stub: pb_grpc.EnforcerStub, contact: pb.Contact, ws: str = "acme"
) -> pb.Decision:
    decision: pb.Decision = await stub.Activate(
        pb.ActivateRequest(workspace_id=ws, contact=contact)
    )
    return decision


async def test_new_contact_is_admitted_and_counted(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    decision = await activate(enforcer_stub, email(1))
    assert decision.allowed
    assert decision.reason == pb.REASON_ADMITTED
    assert len(decision.contact_key) == 28
    assert decision.usage.active == 1
    assert decision.usage.limit == 100
    assert decision.usage.remaining == 99
    assert decision.usage.period == "2026-11"
    assert decision.usage.period_start.ToJsonString() == "2026-11-01T00:00:00Z"
    assert decision.usage.period_end.ToJsonString() == "2026-12-01T00:00:00Z"
    assert decision.usage.plan == "enterprise"
    assert not decision.usage.HasField("trial_ends_at")


async def test_active_contact_is_counted_once(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    first = await activate(enforcer_stub, email(1))
    again = await activate(enforcer_stub, email(1))
    assert again.allowed
    assert again.reason == pb.REASON_ALREADY_ACTIVE
    assert again.contact_key == first.contact_key
    assert again.usage.active == 1


async def test_limit_denies_new_contacts_but_serves_active_ones(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar(default_limit=3)
    for n in range(3):
        assert (await activate(stub, email(n))).reason == pb.REASON_ADMITTED
    denied = await activate(stub, email(99))
    assert not denied.allowed
    assert denied.reason == pb.REASON_LIMIT_REACHED
    assert denied.usage.active == 3
    assert denied.usage.remaining == 0
    still = await activate(stub, email(0))
    assert still.allowed
    assert still.reason == pb.REASON_ALREADY_ACTIVE


async def test_zero_limit_denies_everyone_new(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(default_limit=0)
    decision = await activate(stub, email(1))
    assert not decision.allowed
    assert decision.reason == pb.REASON_LIMIT_REACHED


async def test_check_answers_like_activate_and_changes_nothing(
    make_sidecar: SidecarFactory, redis_db: redis.Redis
) -> None:
    stub = await make_sidecar(default_limit=1)
    request = pb.CheckRequest(workspace_id="acme", contact=email(1))
    within = await stub.Check(request)
    assert within.allowed
    assert within.reason == pb.REASON_WITHIN_LIMIT
    assert within.usage.active == 0
    assert redis_db.dbsize() == 0

    await activate(stub, email(1))
    assert (await stub.Check(request)).reason == pb.REASON_ALREADY_ACTIVE
    over = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=email(2)))
    assert not over.allowed
    assert over.reason == pb.REASON_LIMIT_REACHED
    assert over.usage.active == 1


async def test_workspaces_are_counted_apart(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(default_limit=1)
    assert (await activate(stub, email(1), "acme")).allowed
    assert (await activate(stub, email(2), "globex")).allowed
    assert not (await activate(stub, email(3), "acme")).allowed
    other = await activate(stub, email(1), "globex")
    assert not other.allowed  # globex has its own count, and it is full


async def test_batch_decides_in_request_order(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(default_limit=3)
    await activate(stub, email(0))
    contacts = [email(1), email(0), email(2), email(3), email(1), email(4)]
    response = await stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts)
    )
    reasons = [d.reason for d in response.decisions]
    assert reasons == [
        pb.REASON_ADMITTED,
        pb.REASON_ALREADY_ACTIVE,
        pb.REASON_ADMITTED,
        pb.REASON_LIMIT_REACHED,
        pb.REASON_ALREADY_ACTIVE,
        pb.REASON_LIMIT_REACHED,
    ]
    assert [d.allowed for d in response.decisions] == [True, True, True, False, True, False]
    assert response.decisions[0].contact_key == response.decisions[4].contact_key
    assert not response.decisions[0].HasField("usage")
    assert response.usage.active == 3
    assert response.usage.remaining == 0


async def test_largest_batch_is_accepted(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(default_limit=20_000, batch_max=10_000)
    contacts = [pb.Contact(id=f"crm-{n}") for n in range(10_000)]
    response = await stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts)
    )
    assert len(response.decisions) == 10_000
    assert all(d.reason == pb.REASON_ADMITTED for d in response.decisions)
    assert response.usage.active == 10_000


BAD_REQUESTS = [
    ("", email(1), "workspace_id"),
    ("has space", email(1), "workspace_id"),
    ("x" * 65, email(1), "workspace_id"),
    ("w{1}", email(1), "workspace_id"),
    ("acme", pb.Contact(), "contact"),
    ("acme", pb.Contact(email="not-an-address"), "contact.email"),
    ("acme", pb.Contact(email="a@b"), "contact.email"),
    ("acme", pb.Contact(phone="call me"), "contact.phone"),
    ("acme", pb.Contact(phone="+12"), "contact.phone"),
    ("acme", pb.Contact(phone="+1234567890123456"), "contact.phone"),
    ("acme", pb.Contact(id="x" * 257), "contact.id"),
    ("acme", pb.Contact(id="bad\x00id"), "contact.id"),
    ("acme", pb.Contact(email=("a" * 250) + "@example.com"), "contact.email"),
    ("acme", pb.Contact(channel="sms"), "contact.visitor_id"),
    ("acme", pb.Contact(visitor_id="v1"), "contact.channel"),
    ("acme", pb.Contact(channel="SMS Channel!", visitor_id="v1"), "contact.channel"),
    ("acme", pb.Contact(channel="sms", visitor_id="v" * 257), "contact.visitor_id"),
]


@pytest.mark.parametrize(("workspace", "contact", "field"), BAD_REQUESTS)
async def test_bad_input_is_invalid_argument_naming_the_field(
    enforcer_stub: pb_grpc.EnforcerStub,
    redis_db: redis.Redis,
    workspace: str,
    contact: pb.Contact,
    field: str,
) -> None:
    for call in (enforcer_stub.Activate, enforcer_stub.Check):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(pb.ActivateRequest(workspace_id=workspace, contact=contact))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith(f"{field}:")
    assert redis_db.dbsize() == 0
    # and the server keeps serving
    assert (await activate(enforcer_stub, email(1))).reason == pb.REASON_ADMITTED


async def test_bad_contact_in_batch_names_its_index_and_counts_nothing(
    enforcer_stub: pb_grpc.EnforcerStub, redis_db: redis.Redis
) -> None:
    contacts = [email(1), email(2), pb.Contact(phone="12")]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await enforcer_stub.ActivateBatch(
            pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("contacts[2].phone:")
    assert redis_db.dbsize() == 0


@pytest.mark.parametrize("size", [0, 11])
async def test_empty_or_oversized_batch_is_refused(
    make_sidecar: SidecarFactory, redis_db: redis.Redis, size: int
) -> None:
    stub = await make_sidecar(batch_max=10)
    contacts = [email(n) for n in range(size)]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ActivateBatch(pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("contacts:")
    assert redis_db.dbsize() == 0

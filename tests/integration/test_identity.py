"""One person, many channels: linking, late identification, conflicts, merges, exemptions."""

from __future__ import annotations

import asyncio

import grpc
import pytest
import redis

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import act, kinds, read_events, subscribe
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory

ANA_EMAIL = "ana@example.com"
ANA_PHONE = "+55 11 98765-4321"


async def active(stub: pb_grpc.EnforcerStub) -> int:
    decision = await stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(id="usage-probe"))
    )
    count: int = decision.usage.active
    return count


async def merge(
    admin_stub: admin_grpc.AdminStub, target: pb.Contact, *sources: pb.Contact
) -> admin_pb.MergeResponse:
    reply: admin_pb.MergeResponse = await admin_stub.Merge(
        admin_pb.MergeRequest(workspace_id="acme", sources=sources, target=target),
        metadata=AUTH,
    )
    return reply


async def test_one_person_across_livechat_sms_and_whatsapp(
    enforcer_stub: pb_grpc.EnforcerStub,
) -> None:
    first = await act(
        enforcer_stub, email=ANA_EMAIL, phone=ANA_PHONE, channel="livechat", visitor_id="lc"
    )
    assert first.reason == pb.REASON_ADMITTED
    by_phone = await act(
        enforcer_stub, phone="0055 11 987654321", channel="whatsapp", visitor_id="wa"
    )
    by_email = await act(enforcer_stub, email="ANA@example.com", channel="sms", visitor_id="sms-1")
    visitor = await act(enforcer_stub, channel="livechat", visitor_id="lc")
    assert {d.contact_key for d in (first, by_phone, by_email, visitor)} == {first.contact_key}
    assert all(d.reason == pb.REASON_ALREADY_ACTIVE for d in (by_phone, by_email, visitor))
    assert await active(enforcer_stub) == 1


async def test_first_seen_wins(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    phone_first = await act(enforcer_stub, phone=ANA_PHONE)
    both = await act(enforcer_stub, email=ANA_EMAIL, phone=ANA_PHONE)
    email_later = await act(enforcer_stub, email=ANA_EMAIL)
    assert both.contact_key == phone_first.contact_key == email_later.contact_key
    assert both.reason == email_later.reason == pb.REASON_ALREADY_ACTIVE
    assert not both.identity_conflict
    assert await active(enforcer_stub) == 1


async def test_late_identification_of_a_counted_visitor(
    enforcer_stub: pb_grpc.EnforcerStub,
) -> None:
    visitor = await act(enforcer_stub, channel="livechat", visitor_id="v-9")
    assert visitor.reason == pb.REASON_ADMITTED
    identified = await act(enforcer_stub, email=ANA_EMAIL, channel="livechat", visitor_id="v-9")
    assert identified.allowed
    assert identified.reason == pb.REASON_ALREADY_ACTIVE  # the person was already active
    assert identified.visitor_merged
    assert identified.contact_key != visitor.contact_key
    assert identified.usage.active == 1
    again = await act(enforcer_stub, channel="livechat", visitor_id="v-9")
    assert again.contact_key == identified.contact_key
    assert await active(enforcer_stub) == 1


async def test_late_identification_when_both_were_counted(
    enforcer_stub: pb_grpc.EnforcerStub,
) -> None:
    await act(enforcer_stub, channel="sms", visitor_id="s-1")
    await act(enforcer_stub, email=ANA_EMAIL)
    assert await active(enforcer_stub) == 2
    linked = await act(enforcer_stub, email=ANA_EMAIL, channel="sms", visitor_id="s-1")
    assert linked.reason == pb.REASON_ALREADY_ACTIVE
    assert linked.visitor_merged
    assert linked.usage.active == 1
    assert await active(enforcer_stub) == 1


async def test_check_does_not_link_or_uncount(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    await act(enforcer_stub, channel="sms", visitor_id="s-1")
    await act(enforcer_stub, email=ANA_EMAIL)
    check = await enforcer_stub.Check(
        pb.CheckRequest(
            workspace_id="acme",
            contact=pb.Contact(email=ANA_EMAIL, channel="sms", visitor_id="s-1"),
        )
    )
    assert check.visitor_merged
    assert check.usage.active == 2
    assert await active(enforcer_stub) == 2
    visitor_alone = await act(enforcer_stub, channel="sms", visitor_id="s-1")
    assert not visitor_alone.visitor_merged
    assert visitor_alone.contact_key != check.contact_key


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ({"email": ANA_EMAIL}, {"phone": ANA_PHONE}, "first"),
        ({"phone": ANA_PHONE}, {"id": "crm-1"}, "second"),
    ],
)
async def test_conflicts_are_not_merged(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    first: dict[str, str],
    second: dict[str, str],
    winner: str,
) -> None:
    a = await act(enforcer_stub, **first)
    b = await act(enforcer_stub, **second)
    both = await act(enforcer_stub, **first, **second)
    assert both.identity_conflict
    assert both.reason == pb.REASON_ALREADY_ACTIVE
    assert both.contact_key == (a if winner == "first" else b).contact_key
    again = await act(enforcer_stub, **first, **second)
    assert again.identity_conflict
    assert await active(enforcer_stub) == 2
    (event,) = await read_events(admin_stub, 1)
    assert kinds([event]) == [("IDENTITY_CONFLICT", 0)]
    # one event per pair and period, however often the conflict comes back
    from tests.support.calls import no_more_events

    assert await no_more_events(admin_stub, event.id)


async def test_merge_two_then_three_identities(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    email = await act(enforcer_stub, email=ANA_EMAIL)
    await act(enforcer_stub, phone=ANA_PHONE)
    await act(enforcer_stub, id="crm-1")
    await act(enforcer_stub, id="someone-else")
    assert await active(enforcer_stub) == 4

    two = await merge(admin_stub, pb.Contact(email=ANA_EMAIL), pb.Contact(phone=ANA_PHONE))
    assert (two.contact_key, two.folded, two.uncounted) == (email.contact_key, 1, 1)
    assert two.usage.active == 3
    assert (await act(enforcer_stub, phone=ANA_PHONE)).contact_key == email.contact_key

    again = await merge(admin_stub, pb.Contact(email=ANA_EMAIL), pb.Contact(phone=ANA_PHONE))
    assert (again.folded, again.uncounted, again.usage.active) == (0, 0, 3)

    three = await merge(
        admin_stub, pb.Contact(id="crm-1"), pb.Contact(email=ANA_EMAIL), pb.Contact(phone=ANA_PHONE)
    )
    assert (three.folded, three.uncounted, three.usage.active) == (1, 1, 2)
    for contact in ({"email": ANA_EMAIL}, {"phone": ANA_PHONE}, {"id": "crm-1"}):
        decision = await act(enforcer_stub, **contact)
        assert decision.contact_key == three.contact_key
        assert decision.reason == pb.REASON_ALREADY_ACTIVE
    assert await active(enforcer_stub) == 2


async def test_merge_into_an_uncounted_survivor_moves_the_count(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await act(enforcer_stub, phone=ANA_PHONE)
    reply = await merge(admin_stub, pb.Contact(id="crm-1"), pb.Contact(phone=ANA_PHONE))
    assert (reply.folded, reply.uncounted, reply.usage.active) == (1, 0, 1)
    assert (await act(enforcer_stub, id="crm-1")).reason == pb.REASON_ALREADY_ACTIVE


async def test_merge_is_safe_under_concurrent_activations(
    make_sidecar: SidecarFactory,
) -> None:
    stub = await make_sidecar()
    admin_stub = make_sidecar.admin()
    people = [
        (
            pb.Contact(email=f"p{n}@example.com"),
            pb.Contact(phone=f"+4930{n:07d}"),
            pb.Contact(channel="sms", visitor_id=f"v{n}"),
        )
        for n in range(20)
    ]

    async def activate_all() -> None:
        await asyncio.gather(
            *(
                stub.Activate(pb.ActivateRequest(workspace_id="acme", contact=c))
                for person in people
                for c in person
            )
        )

    await activate_all()
    assert await active(stub) == 60
    merges = [merge(admin_stub, p[0], p[1], p[2]) for p in people]
    await asyncio.gather(activate_all(), *merges, activate_all())
    assert await active(stub) == 20
    for person in people:
        keys = {(await act(stub, **_fields(c))).contact_key for c in person}
        assert len(keys) == 1


def _fields(contact: pb.Contact) -> dict[str, str]:
    return {f.name: v for f, v in contact.ListFields()}


async def test_exempt_contacts_are_allowed_and_never_counted(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    await subscribe(admin_stub, plan="enterprise", custom_limit=1)
    bot = pb.Contact(id="bot-7", email="bot@example.com")
    exempted = await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(workspace_id="acme", contacts=[bot], exempt=True), metadata=AUTH
    )
    assert len(exempted.contact_keys) == 1
    await act(enforcer_stub, email=ANA_EMAIL)  # the one place
    decision = await act(enforcer_stub, id="bot-7")
    assert decision.allowed
    assert decision.reason == pb.REASON_EXEMPT
    assert decision.usage.active == 1
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(workspace_id="acme", contacts=[bot], exempt=False), metadata=AUTH
    )
    assert (await act(enforcer_stub, id="bot-7")).reason == pb.REASON_LIMIT_REACHED


async def test_identity_admin_calls_refuse_bad_input(admin_stub: admin_grpc.AdminStub) -> None:
    cases = [
        (
            admin_stub.Merge,
            admin_pb.MergeRequest(workspace_id="acme", target=pb.Contact(id="x")),
            "sources:",
        ),
        (
            admin_stub.Merge,
            admin_pb.MergeRequest(
                workspace_id="acme", sources=[pb.Contact(id="y")], target=pb.Contact(email="no")
            ),
            "target.email:",
        ),
        (admin_stub.SetExempt, admin_pb.SetExemptRequest(workspace_id="acme"), "contacts:"),
        (
            admin_stub.SetExempt,
            admin_pb.SetExemptRequest(
                workspace_id="acme", contacts=[pb.Contact(id="a"), pb.Contact(phone="1")]
            ),
            "contacts[1].phone:",
        ),
    ]
    for call, request, prefix in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(request, metadata=AUTH)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith(prefix)


async def test_exemption_follows_the_person_whatever_they_arrive_with(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    async def exempt(*contacts: pb.Contact) -> None:
        await admin_stub.SetExempt(
            admin_pb.SetExemptRequest(workspace_id="acme", contacts=contacts, exempt=True),
            metadata=AUTH,
        )

    await exempt(pb.Contact(email="bot@example.com"))
    assert (
        await act(enforcer_stub, id="crm-bot", email="bot@example.com")
    ).reason == pb.REASON_EXEMPT
    assert (await act(enforcer_stub, id="crm-bot")).reason == pb.REASON_EXEMPT
    await exempt(pb.Contact(channel="sms", visitor_id="qa-1"))
    assert (
        await act(enforcer_stub, email="qa@example.com", channel="sms", visitor_id="qa-1")
    ).reason == (pb.REASON_EXEMPT)
    await act(enforcer_stub, email=ANA_EMAIL, phone=ANA_PHONE)
    await exempt(pb.Contact(phone=ANA_PHONE))
    assert (await act(enforcer_stub, email=ANA_EMAIL)).reason == pb.REASON_EXEMPT
    assert await active(enforcer_stub) == 1  # Ana was counted before her exemption


async def test_a_new_identifier_beside_an_identified_visitor_joins_that_person(
    enforcer_stub: pb_grpc.EnforcerStub,
) -> None:
    first = await act(enforcer_stub, email=ANA_EMAIL, channel="whatsapp", visitor_id="wa-17")
    later = await act(enforcer_stub, phone=ANA_PHONE, channel="whatsapp", visitor_id="wa-17")
    assert later.reason == pb.REASON_ALREADY_ACTIVE
    assert not later.identity_conflict
    assert later.contact_key == first.contact_key
    assert (await act(enforcer_stub, phone=ANA_PHONE)).contact_key == first.contact_key
    assert await active(enforcer_stub) == 1


async def test_merge_resolves_the_target_like_a_decision(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    phone = await act(enforcer_stub, phone=ANA_PHONE)
    await act(enforcer_stub, id="crm-9")
    reply = await merge(
        admin_stub, pb.Contact(email=ANA_EMAIL, phone=ANA_PHONE), pb.Contact(id="crm-9")
    )
    assert reply.contact_key == phone.contact_key
    assert (reply.uncounted, reply.usage.active) == (1, 1)
    assert (await act(enforcer_stub, email=ANA_EMAIL)).contact_key == phone.contact_key


async def test_member_sets_keep_their_expiry_when_emptied_and_refilled(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub, redis_db: redis.Redis
) -> None:
    members = WorkspaceKeys("acme").members("2026-11")
    await act(enforcer_stub, channel="sms", visitor_id="s-1")
    await act(enforcer_stub, email=ANA_EMAIL, channel="sms", visitor_id="s-1")  # SREM, then SADD
    assert redis_db.pttl(members) > 0
    redis_db.delete(members)
    await act(enforcer_stub, phone=ANA_PHONE)
    await merge(admin_stub, pb.Contact(id="crm-1"), pb.Contact(phone=ANA_PHONE))  # SREM, then SADD
    assert redis_db.scard(members) == 1
    assert redis_db.pttl(members) > 0

"""One person written two ways is one contact: phone notations, national numbers under the
workspace's default region, emails, and channel context; through real gRPC and Redis."""

from __future__ import annotations

import grpc
import pytest

from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.calls import act, subscribe
from tests.support.sidecars import SidecarFactory


async def active(stub: pb_grpc.EnforcerStub) -> int:
    decision = await stub.Check(
        pb.CheckRequest(workspace_id="acme", contact=pb.Contact(id="usage-probe"))
    )
    count: int = decision.usage.active
    return count


async def test_notations_of_one_phone_are_one_contact(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    first = await act(enforcer_stub, phone="+49 (0)151 12345678")
    assert first.reason == pb.REASON_ADMITTED
    for written in ("+49 151 12345678", "0049-151-1234-5678", "+4915112345678"):
        again = await act(enforcer_stub, phone=written)
        assert (again.reason, again.contact_key) == (pb.REASON_ALREADY_ACTIVE, first.contact_key)
    assert await active(enforcer_stub) == 1


async def test_a_national_number_needs_the_workspace_region(
    enforcer_stub: pb_grpc.EnforcerStub, admin_stub: admin_grpc.AdminStub
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await act(enforcer_stub, phone="0151 1234 5678")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("contact.phone: needs its country code")

    international = await act(enforcer_stub, phone="+4915112345678")
    sub = await subscribe(admin_stub, plan="enterprise", default_region="de")
    assert sub.default_region == "DE"
    national = await act(enforcer_stub, phone="0151 1234 5678")
    assert (national.reason, national.contact_key) == (
        pb.REASON_ALREADY_ACTIVE,
        international.contact_key,
    )


async def test_a_region_changed_by_another_sidecar_is_followed(
    make_sidecar: SidecarFactory,
) -> None:
    mine = await make_sidecar()
    await subscribe(make_sidecar.admin(), plan="enterprise", default_region="DE")
    german = await act(mine, phone="0151 1234 5678")  # reads the region: DE
    assert german.reason == pb.REASON_ADMITTED
    other = await make_sidecar()
    await subscribe(make_sidecar.admin(), plan="enterprise", default_region="BR")
    # this sidecar still has DE; the script's version check makes it read BR and key again
    brazilian = await act(mine, phone="(11) 98765-4321")
    assert brazilian.reason == pb.REASON_ADMITTED
    same = await act(other, phone="+55 11 98765-4321")
    assert (same.reason, same.contact_key) == (pb.REASON_ALREADY_ACTIVE, brazilian.contact_key)


async def test_a_bad_region_is_refused(admin_stub: admin_grpc.AdminStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await subscribe(admin_stub, plan="enterprise", default_region="Germany")
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith("default_region: ")


async def test_emails_in_other_forms_are_one_contact(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    first = await act(enforcer_stub, email="ana@example.com")
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in "ANA@EXAMPLE.COM")
    for written in ("  Ana@Example.COM ", fullwidth):
        again = await act(enforcer_stub, email=written)
        assert again.contact_key == first.contact_key
    for hidden in ("ana\u200b@example.com", "\ufeffana@example.com", "mailto:ana@example.com"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await act(enforcer_stub, email=hidden)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert (caught.value.details() or "").startswith("contact.email: ")
    assert await active(enforcer_stub) == 1


async def test_a_channel_beside_an_identifier_is_context(
    enforcer_stub: pb_grpc.EnforcerStub,
) -> None:
    tagged = await act(enforcer_stub, email="ana@example.com", channel="whatsapp")
    assert tagged.reason == pb.REASON_ADMITTED
    plain = await act(enforcer_stub, email="ana@example.com")
    assert (plain.reason, plain.contact_key) == (pb.REASON_ALREADY_ACTIVE, tagged.contact_key)
    visitor = await act(enforcer_stub, channel="whatsapp", visitor_id="wa-17")
    assert visitor.contact_key != tagged.contact_key
    for contact, field in (
        ({"channel": "sms"}, "contact.visitor_id"),
        ({"visitor_id": "v1"}, "contact.channel"),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await act(enforcer_stub, **contact)
        assert (caught.value.details() or "").startswith(f"{field}: ")

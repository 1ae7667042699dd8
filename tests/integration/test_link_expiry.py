"""Bounded links: the links sweep deletes the links of identities not counted for
MAC_RETENTION_PERIODS + 1 periods, keeps those counted since and the exempt, and files links
written before the identity index existed (kept, and found by Forget)."""

from __future__ import annotations

from datetime import timedelta

import redis

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.storage.keys import WorkspaceKeys
from tests.support.constants import AUTH

KEYS = WorkspaceKeys("acme")


async def act(stub: pb_grpc.EnforcerStub, **fields: str) -> pb.Decision:
    decision: pb.Decision = await stub.Activate(
        pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(**fields))
    )
    return decision


def linked(r: redis.Redis) -> set[bytes]:
    return {k for k in r.hkeys(KEYS.links) if isinstance(k, bytes) and len(k) == 14}


async def test_links_of_identities_not_counted_for_retention_plus_one_periods_expire(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    sidecar_app: Sidecar,
    redis_db: redis.Redis,
    clock: ManualClock,
) -> None:
    # November: three people with two identifiers each (each has links)
    for name in ("old", "back", "exempt"):
        await act(enforcer_stub, id=name, email=f"{name}@example.com")
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(
            workspace_id="acme", contacts=[pb.Contact(id="exempt")], exempt=True
        ),
        metadata=AUTH,
    )
    assert len(linked(redis_db)) == 6
    clock.advance(timedelta(days=60))  # January: "back" is counted again
    await act(enforcer_stub, email="back@example.com")
    # November's members are kept (the current period and MAC_RETENTION_PERIODS=2 before)
    assert await sidecar_app.link_expiry.sweep(["acme"]) == 0
    assert len(linked(redis_db)) == 6
    clock.advance(timedelta(days=31))  # February: November's members have expired

    assert await sidecar_app.link_expiry.sweep(["acme"]) == 1

    assert len(linked(redis_db)) == 4  # back's and exempt's
    assert redis_db.hlen(KEYS.identities) == 2
    # "old" arriving again is a new contact; "back" is still one person
    again = await act(enforcer_stub, email="old@example.com")
    assert again.reason == pb.REASON_ADMITTED
    back = await act(enforcer_stub, id="back")
    by_email = await act(enforcer_stub, email="back@example.com")
    assert back.contact_key == by_email.contact_key


async def test_links_written_before_the_index_are_filed_kept_and_forgotten(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    sidecar_app: Sidecar,
    redis_db: redis.Redis,
) -> None:
    await act(enforcer_stub, id="ana", email="ana@example.com", phone="+5511987654321")
    assert redis_db.hexists(KEYS.links, "~i")  # a new workspace's links are indexed from the first
    # as a sidecar before the index wrote them: links alone
    redis_db.delete(KEYS.identities)
    redis_db.hdel(KEYS.links, "~i")
    assert len(linked(redis_db)) == 3

    assert await sidecar_app.link_expiry.sweep(["acme"]) == 0

    assert redis_db.hexists(KEYS.links, "~i")
    assert redis_db.hlen(KEYS.identities) == 1
    assert len(linked(redis_db)) == 3
    reply = await admin_stub.Forget(
        admin_pb.ForgetRequest(workspace_id="acme", contact=pb.Contact(phone="+5511987654321")),
        metadata=AUTH,
    )
    assert (reply.forgotten, reply.identifiers_removed) == (True, 3)
    assert linked(redis_db) == set()


async def test_forget_files_links_written_before_the_index_first(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    redis_db: redis.Redis,
) -> None:
    await act(enforcer_stub, id="ana", email="ana@example.com", channel="web", visitor_id="v1")
    redis_db.delete(KEYS.identities)
    redis_db.hdel(KEYS.links, "~i")

    reply = await admin_stub.Forget(
        admin_pb.ForgetRequest(workspace_id="acme", contact=pb.Contact(email="ana@example.com")),
        metadata=AUTH,
    )

    assert (reply.forgotten, reply.identifiers_removed, reply.periods) == (True, 3, 1)
    assert linked(redis_db) == set()


async def test_a_merge_moves_the_folded_identity_into_the_survivors_entry(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    redis_db: redis.Redis,
) -> None:
    await act(enforcer_stub, id="ana", email="ana@example.com")
    await act(enforcer_stub, id="ana-2", phone="+5511987654321")
    await admin_stub.Merge(
        admin_pb.MergeRequest(
            workspace_id="acme",
            sources=[pb.Contact(id="ana-2")],
            target=pb.Contact(id="ana"),
        ),
        metadata=AUTH,
    )
    assert redis_db.hlen(KEYS.identities) == 1

    reply = await admin_stub.Forget(
        admin_pb.ForgetRequest(workspace_id="acme", contact=pb.Contact(phone="+5511987654321")),
        metadata=AUTH,
    )

    assert (reply.forgotten, reply.identifiers_removed) == (True, 4)
    assert linked(redis_db) == set()
    assert redis_db.hlen(KEYS.identities) == 0

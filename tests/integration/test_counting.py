"""Who counts as one contact: normalization, channels, precedence; and privacy in Redis."""

from __future__ import annotations

import redis

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc


async def keys_of(stub: pb_grpc.EnforcerStub, *contacts: pb.Contact) -> list[str]:
    out = []
    for contact in contacts:
        decision = await stub.Activate(pb.ActivateRequest(workspace_id="acme", contact=contact))
        out.append(decision.contact_key)
    return out


async def active(stub: pb_grpc.EnforcerStub) -> int:
    probe = pb.Contact(id="usage-probe")
    decision = await stub.Check(pb.CheckRequest(workspace_id="acme", contact=probe))
    count: int = decision.usage.active
    return count


async def test_email_in_any_case_from_any_channel_counts_once(
    enforcer_stub: pb_grpc.EnforcerStub,
) -> None:
    keys = await keys_of(
        enforcer_stub,
        pb.Contact(email="Ana.Silva@Example.com", channel="livechat", visitor_id="lc-1"),
        pb.Contact(email="ana.silva@example.com", channel="whatsapp", visitor_id="wa-9"),
        pb.Contact(email="  ANA.SILVA@EXAMPLE.COM ", channel="email", visitor_id="m-3"),
    )
    assert len(set(keys)) == 1
    assert await active(enforcer_stub) == 1


async def test_phone_in_any_notation_counts_once(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    keys = await keys_of(
        enforcer_stub,
        pb.Contact(phone="+55 11 98765-4321", channel="sms", visitor_id="s1"),
        pb.Contact(phone="0055 (11) 98765 4321", channel="whatsapp", visitor_id="w1"),
        pb.Contact(phone="+5511987654321"),
    )
    assert len(set(keys)) == 1
    assert await active(enforcer_stub) == 1


async def test_unidentified_visitors_count_per_channel(enforcer_stub: pb_grpc.EnforcerStub) -> None:
    keys = await keys_of(
        enforcer_stub,
        pb.Contact(channel="livechat", visitor_id="42"),
        pb.Contact(channel="sms", visitor_id="42"),
        pb.Contact(channel="LiveChat", visitor_id="42"),
    )
    assert keys[0] == keys[2]
    assert keys[0] != keys[1]
    assert await active(enforcer_stub) == 2


async def test_identifiers_seen_together_are_one_identity_keyed_by_the_first(
    enforcer_stub: pb_grpc.EnforcerStub,
) -> None:
    both, by_id, by_email, by_phone = await keys_of(
        enforcer_stub,
        pb.Contact(id="crm-7", email="x@y.io", phone="+4930123456"),
        pb.Contact(id="crm-7"),
        pb.Contact(email="x@y.io", channel="sms", visitor_id="s-1"),
        pb.Contact(phone="+49 30 123456"),
    )
    assert both == by_id == by_email == by_phone
    assert await active(enforcer_stub) == 1


async def test_redis_holds_no_email_or_phone(
    enforcer_stub: pb_grpc.EnforcerStub, redis_db: redis.Redis
) -> None:
    emails = ["Ana.Silva@Example.com", "bob@corp.example"]
    phones = ["+55 11 98765-4321", "+4930123456"]
    contacts = [pb.Contact(email=e) for e in emails] + [pb.Contact(phone=p) for p in phones]
    contacts.append(pb.Contact(email=emails[1], phone=phones[1], channel="sms", visitor_id="v"))
    await keys_of(enforcer_stub, *contacts)
    await enforcer_stub.ActivateBatch(
        pb.ActivateBatchRequest(workspace_id="acme", contacts=contacts)
    )

    parts: list[bytes | str] = []
    for key in redis_db.scan_iter("*"):
        parts.append(key)
        kind = redis_db.type(key)
        if kind == b"set":
            parts.extend(redis_db.smembers(key))
        elif kind == b"hash":
            for field, value in redis_db.hgetall(key).items():
                parts += [field, value]
        else:
            parts.append(redis_db.dump(key) or b"")
    dump = b"".join(p if isinstance(p, bytes) else p.encode() for p in parts)
    assert dump, "the activations wrote nothing"
    lowered = dump.lower()
    for needle in [*emails, "ana.silva", "corp.example", "98765", "4930123456", "5511"]:
        assert needle.lower().encode() not in lowered

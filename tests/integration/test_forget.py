"""Admin.Forget: a person erased from Redis (links, index, exemption, members, flags), the
counts kept, a returning person counted as new, idempotent, exact under concurrent Activates,
and no digest of the person left in the RDB dump or the append-only files."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
import redis

from sidecar.client import AsyncClient, Client
from sidecar.domain.clock import ManualClock
from sidecar.domain.contact import ContactFields, ContactKeyer
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import Sidecar
from sidecar.storage.keys import WorkspaceKeys
from tests.support.commands import cli
from tests.support.constants import ADMIN_TOKEN, AUTH, SECRET
from tests.support.redis_servers import RedisServer
from tests.support.sidecars import SidecarFactory

ANA = ContactFields(id="ana-1", email="ana@example.com", phone="+5511987654321")
KEYS = WorkspaceKeys("acme")


def digests(*contacts: ContactFields) -> set[bytes]:
    """The 14-byte keys of every identifier of the contacts, as the sidecar keys them."""
    keyer = ContactKeyer(SECRET.encode())
    found: set[bytes] = set()
    for contact in contacts:
        keyed = keyer.keyed(contact)
        found.update(keyed.primaries)
        if keyed.visitor:
            found.add(keyed.visitor)
    return found


def contact(fields: ContactFields) -> pb.Contact:
    return pb.Contact(
        id=fields.id,
        email=fields.email,
        phone=fields.phone,
        channel=fields.channel,
        visitor_id=fields.visitor_id,
    )


async def forget(admin: admin_grpc.AdminStub, **fields: str) -> admin_pb.ForgetResponse:
    reply: admin_pb.ForgetResponse = await admin.Forget(
        admin_pb.ForgetRequest(workspace_id="acme", contact=pb.Contact(**fields)), metadata=AUTH
    )
    return reply


async def act(stub: pb_grpc.EnforcerStub, fields: ContactFields) -> pb.Decision:
    decision: pb.Decision = await stub.Activate(
        pb.ActivateRequest(workspace_id="acme", contact=contact(fields))
    )
    return decision


def everything(r: redis.Redis, *, but: tuple[str, ...] = ()) -> bytes:
    """Every key of the database (but those named) and its serialized value, end to end."""
    out = b""
    for key in sorted(r.scan_iter(count=1000)):
        if key.decode() not in but:
            out += key + b"\x00" + (r.dump(key) or b"") + b"\x00"
    return out


def conflict_flags(r: redis.Redis) -> list[bytes]:
    found = r.hkeys(KEYS.flags("2026-11"))
    return [f for f in found if isinstance(f, bytes) and f.startswith(b"c:")]


def held(blob: bytes, keys: set[bytes]) -> set[bytes]:
    return {k for k in keys if k in blob}


async def test_forget_erases_the_person_and_keeps_the_count(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    redis_db: redis.Redis,
) -> None:
    web = ContactFields(email=ANA.email, channel="web", visitor_id="v-77")
    await act(enforcer_stub, ContactFields(channel="web", visitor_id="v-77"))  # a visitor first
    first = await act(enforcer_stub, ANA)
    assert (await act(enforcer_stub, web)).reason == pb.REASON_ALREADY_ACTIVE
    other = ContactFields(email="bo@example.com", phone="+5511912345678")
    await act(enforcer_stub, other)
    await admin_stub.SetExempt(
        admin_pb.SetExemptRequest(
            workspace_id="acme", contacts=[pb.Contact(phone=ANA.phone)], exempt=False
        ),
        metadata=AUTH,
    )
    ana = digests(ANA, web)
    assert len(ana) == 4
    assert held(everything(redis_db), ana) == ana
    version = int(redis_db.hget(KEYS.links, "~v") or 0)
    before = await enforcer_stub.Check(pb.CheckRequest(workspace_id="acme", contact=contact(ANA)))
    assert before.usage.active == 2

    reply = await forget(admin_stub, phone=ANA.phone)

    assert (reply.forgotten, reply.identifiers_removed, reply.periods) == (True, 4, 1)
    assert held(everything(redis_db), ana) == set()
    assert int(redis_db.hget(KEYS.links, "~v") or 0) == version + 1
    # the count stays: an anonymous member holds the place, never one of Ana's keys
    members = redis_db.smembers(KEYS.members("2026-11"))
    assert len(members) == 2
    assert not members & ana
    assert redis_db.ttl(KEYS.members("2026-11")) > 0
    # Bo is untouched
    assert held(everything(redis_db), digests(other)) == digests(other)
    # Ana arriving again is a new contact, counted once more in the same period
    again = await act(enforcer_stub, ANA)
    assert (again.reason, again.usage.active) == (pb.REASON_ADMITTED, 3)
    assert again.contact_key == first.contact_key  # the same first identifier, keyed alike


async def test_forget_twice_changes_nothing_the_second_time(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    redis_db: redis.Redis,
) -> None:
    await act(enforcer_stub, ANA)
    first = await forget(admin_stub, email=ANA.email)
    assert first.forgotten
    state = everything(redis_db, but=(KEYS.audit,))

    again = await forget(admin_stub, id=ANA.id, email=ANA.email, phone=ANA.phone)
    never = await forget(admin_stub, email="nobody@example.com")

    assert (again.forgotten, again.identifiers_removed, again.periods) == (False, 0, 0)
    assert (never.forgotten, never.identifiers_removed, never.periods) == (False, 0, 0)
    assert everything(redis_db, but=(KEYS.audit,)) == state
    # each call is in the audit trail, the later two as changing nothing; no key in it
    trail = await admin_stub.ListAuditRecords(
        admin_pb.ListAuditRecordsRequest(workspace_id="acme"), metadata=AUTH
    )
    forgets = [r for r in trail.records if r.method == "Forget"]
    assert [r.changed for r in forgets] == [False, False, True]
    assert [(c.field, c.after) for c in forgets[-1].changes] == [
        ("identifiers_removed", str(first.identifiers_removed)),
        ("periods", "1"),
    ]
    assert (forgets[0].admin, list(forgets[0].changes)) == ("admin", [])


async def test_every_period_kept_loses_the_person_and_keeps_its_count(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    redis_db: redis.Redis,
    clock: ManualClock,
) -> None:
    await act(enforcer_stub, ANA)
    await act(enforcer_stub, ContactFields(email="bo@example.com"))
    clock.advance(timedelta(days=30))  # December
    assert (await act(enforcer_stub, ANA)).usage.active == 1

    reply = await forget(admin_stub, id=ANA.id)

    assert (reply.forgotten, reply.identifiers_removed, reply.periods) == (True, 3, 2)
    assert held(everything(redis_db), digests(ANA)) == set()
    for period, count in (("2026-11", 2), ("2026-12", 1)):
        usage = await admin_stub.GetUsage(
            admin_pb.GetUsageRequest(workspace_id="acme", period=period), metadata=AUTH
        )
        assert usage.usage.active == count
        assert redis_db.scard(KEYS.members(period)) == count


async def test_a_conflict_flag_naming_the_person_is_deleted(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    redis_db: redis.Redis,
) -> None:
    await act(enforcer_stub, ContactFields(id=ANA.id))
    await act(enforcer_stub, ContactFields(email=ANA.email))
    await act(enforcer_stub, ContactFields(id=ANA.id, email=ANA.email))  # two identities
    assert conflict_flags(redis_db)

    assert (await forget(admin_stub, id=ANA.id)).forgotten

    assert not conflict_flags(redis_db)
    counted = set(redis_db.smembers(KEYS.members("2026-11")))
    assert not digests(ContactFields(id=ANA.id)) & counted


async def test_no_replica_answers_for_the_person_from_its_record(
    make_sidecar: SidecarFactory,
) -> None:
    first = await make_sidecar(warm_seconds=60.0)
    admin = make_sidecar.admin()
    second = await make_sidecar(warm_seconds=60.0)
    for stub in (first, second):
        await act(stub, ANA)
        warm = await act(stub, ANA)
        assert warm.from_local_record

    assert (await forget(admin, email=ANA.email)).forgotten

    # this process answers from storage at once: a new contact
    here = await act(first, ANA)
    assert (here.reason, here.from_local_record) == (pb.REASON_ADMITTED, False)
    # another learns the identity version moved from its next reply from storage
    await act(second, ContactFields(email="someone-else@example.com"))
    there = await act(second, ContactFields(phone=ANA.phone))
    assert (there.reason, there.from_local_record) == (pb.REASON_ALREADY_ACTIVE, False)


async def test_forget_during_concurrent_activates_is_never_half(
    enforcer_stub: pb_grpc.EnforcerStub,
    admin_stub: admin_grpc.AdminStub,
    redis_db: redis.Redis,
) -> None:
    ana = digests(ANA)
    for round_ in range(5):
        base = 10 * round_
        people = [ContactFields(email=f"p{base + n}@example.com") for n in range(3)]
        await asyncio.gather(*(act(enforcer_stub, p) for p in people))
        await act(enforcer_stub, ANA)
        count = redis_db.scard(KEYS.members("2026-11"))
        calls = [act(enforcer_stub, ANA) for _ in range(8)]
        calls.insert(4, forget(admin_stub, email=ANA.email))  # type: ignore[arg-type]
        await asyncio.gather(*calls)
        linked = {k for k in ana if redis_db.hexists(KEYS.links, k)}
        counted = set(redis_db.smembers(KEYS.members("2026-11"))) & ana
        # either every identifier is gone, or the person came back whole as a new contact
        assert linked in (set(), ana)
        if linked:
            assert len(counted) == 1
            assert {redis_db.hget(KEYS.links, k) for k in ana} == counted
            assert redis_db.scard(KEYS.members("2026-11")) == count + 1
        else:
            assert not counted
            assert redis_db.scard(KEYS.members("2026-11")) == count
        await forget(admin_stub, email=ANA.email)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"phone": "not a phone"},
    ],
)
async def test_a_bad_contact_is_invalid_argument(
    admin_stub: admin_grpc.AdminStub, fields: dict[str, str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await forget(admin_stub, **fields)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "contact" in (raised.value.details() or "")


async def test_a_bad_workspace_is_invalid_argument(admin_stub: admin_grpc.AdminStub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await admin_stub.Forget(
            admin_pb.ForgetRequest(workspace_id="a b", contact=pb.Contact(id="x")), metadata=AUTH
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "workspace_id" in (raised.value.details() or "")


# -- persistence -----------------------------------------------------------------------------


@pytest.fixture
def persistent() -> Iterator[RedisServer]:
    """A Redis of its own with the append-only file on and RDB compression off (so a
    digest inside a listpack is found in the files as its bytes)."""
    server = RedisServer()
    server.start()
    r = server.client()
    try:
        r.config_set("rdbcompression", "no")
        r.config_set("appendonly", "yes")
        settled(r)
        yield server
    finally:
        r.close()
        server.close()


def config(r: redis.Redis, name: str) -> str:
    value = r.config_get(name)[name]
    return value.decode() if isinstance(value, bytes) else str(value)


def settled(r: redis.Redis) -> None:
    """Wait until no AOF rewrite runs or waits, and files of past rewrites are deleted."""
    folder = Path(config(r, "dir")) / config(r, "appenddirname")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        info = r.info("persistence")
        manifest = folder / "appendonly.aof.manifest"
        listed = manifest.exists() and all(
            p.name in manifest.read_text() for p in folder.iterdir() if p != manifest
        )
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"] and listed:
            return
        time.sleep(0.05)
    raise AssertionError("the append-only file rewrite did not settle")


def on_disk(r: redis.Redis) -> bytes:
    """The RDB dump (saved now) and every append-only file, end to end."""
    r.save()
    folder = Path(config(r, "dir"))
    blob = (folder / config(r, "dbfilename")).read_bytes()
    for path in sorted((folder / config(r, "appenddirname")).iterdir()):
        blob += path.read_bytes()
    return blob


async def test_no_file_of_redis_holds_a_digest_of_the_person_after_forget(
    make_sidecar: SidecarFactory, persistent: RedisServer
) -> None:
    stub = await make_sidecar(redis_url=persistent.url)
    admin = make_sidecar.admin()
    web = ContactFields(email=ANA.email, channel="web", visitor_id="v-77")
    await act(stub, ContactFields(channel="web", visitor_id="v-77"))
    await act(stub, ANA)
    await act(stub, web)
    await act(stub, ContactFields(email="bo@example.com", phone="+5511912345678"))
    r = persistent.client()
    ana = digests(ANA, web)
    assert held(on_disk(r), ana) == ana

    assert (await forget(admin, email=ANA.email)).forgotten
    settled(r)

    assert held(on_disk(r), ana) == set()
    assert held(on_disk(r), digests(ContactFields(email="bo@example.com"))) != set()
    r.close()


# -- clients and the CLI ---------------------------------------------------------------------


async def test_the_clients_forget(sidecar_app: Sidecar) -> None:
    address = f"127.0.0.1:{sidecar_app.port}"
    async with AsyncClient(address, token=ADMIN_TOKEN) as mac:
        await mac.activate("acme", id=ANA.id, email=ANA.email)
        reply = await mac.forget("acme", {"email": ANA.email})
        assert (reply.forgotten, reply.identifiers_removed, reply.periods) == (True, 2, 1)

    def again() -> admin_pb.ForgetResponse:
        with Client(address, token=ADMIN_TOKEN) as mac:
            return mac.forget("acme", {"id": ANA.id})

    assert not (await asyncio.to_thread(again)).forgotten


async def test_the_cli_forgets(sidecar_app: Sidecar) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    await sidecar_app.enforcer.activate("acme", ANA)

    code, out, _ = await cli("contacts", "forget", "acme", f"phone={ANA.phone}", *conn)
    assert code == 0
    assert out.strip() == "forgot 3 identifiers; counted in 1 period, where the counts stay"
    code, out, _ = await cli("contacts", "forget", "acme", f"id={ANA.id}", "--json", *conn)
    assert code == 0
    assert json.loads(out) == {"forgotten": False, "identifiers_removed": 0, "periods": 0}
    code, _, err = await cli("contacts", "forget", "acme", "mail=x", *conn)
    assert code == 2
    assert "expected FIELD=VALUE" in err

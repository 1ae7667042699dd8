"""The audit records set_subscription.lua, merge.lua and set_exempt.lua append (lib/audit.lua)
against a real Redis, as ``RedisAuditTrail`` reads them back; no gRPC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from sidecar.domain.audit import DAY_MS, AuditChange, AuditContext, AuditRecord
from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.clock import to_ms
from sidecar.domain.contact import KeyedContact
from sidecar.domain.period import period_at
from sidecar.domain.ports import DecideRequest, ExemptRequest, MergeRequest
from sidecar.domain.subscription import Subscription, resolve
from sidecar.storage.audit import RedisAuditTrail
from sidecar.storage.connections import RedisConnections, RedisOptions
from sidecar.storage.keys import WorkspaceKeys
from sidecar.storage.store import RedisStore
from tests.support.constants import SMALL_POLICY as POLICY
from tests.support.redis_servers import RedisServer

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
PERIOD = period_at(NOW)
EXPIRES = to_ms(datetime(2027, 2, 1, tzinfo=UTC))
AUDIT_KEY = WorkspaceKeys("acme").audit
RETENTION_DAYS = 30


@dataclass
class Trail:
    store: RedisStore
    reader: RedisAuditTrail

    async def records(self, before_id: str = "", oldest_ms: int = 0) -> list[AuditRecord]:
        return await self.reader.audit_records(
            "acme", before_id=before_id, oldest_ms=oldest_ms, count=1000
        )


@pytest.fixture
async def trail(redis_server: RedisServer, redis_db: redis.Redis) -> AsyncIterator[Trail]:
    options = RedisOptions(
        urls=(redis_server.url,), topology="single", timeout=0.5, max_connections=8
    )
    connections = RedisConnections.from_options(options)
    yield Trail(
        RedisStore(connections, audit_retention_days=RETENTION_DAYS),
        RedisAuditTrail(connections.pool),
    )
    await connections.close()


def one(n: int) -> KeyedContact:
    return KeyedContact((n.to_bytes(14, "big"),))


def audit(method: str, at: datetime = NOW, admin: str = "ops") -> AuditContext:
    return AuditContext(admin, method, to_ms(at))


async def subscribe(trail: Trail, sub: Subscription, version: int, at: datetime = NOW) -> int:
    found = await trail.store.set_subscription(
        resolve(sub, PlanCatalog()), at, version, audit("SetSubscription", at)
    )
    assert found is not None
    return found


def stream_bytes(redis_db: redis.Redis) -> bytes:
    """Every id, field and value of the audit stream, joined."""
    out = b""
    entries: Any = redis_db.xrange(AUDIT_KEY)
    for entry_id, fields in entries:
        out += entry_id + b"".join(k + v for k, v in fields.items())
    return out


async def test_a_subscription_change_records_each_field_before_and_after(trail: Trail) -> None:
    first = Subscription("acme", "pro", packs=1, timezone="UTC")
    version = await subscribe(trail, first, 0)
    starts = datetime(2026, 11, 10, tzinfo=UTC)
    later = Subscription(
        "acme", "pro", packs=3, timezone="Europe/Berlin", starts_at=starts, shadow_mode=True
    )
    await subscribe(trail, later, version, NOW + timedelta(minutes=1))
    newest, created = await trail.records()
    assert (newest.admin, newest.method, newest.workspace_id, newest.changed) == (
        "ops",
        "SetSubscription",
        "acme",
        True,
    )
    assert newest.at == NOW + timedelta(minutes=1)
    # in the order of the stored fields; the limit, which follows from the packs, is not one
    assert newest.changes == (
        AuditChange("packs", "1", "3"),
        AuditChange("timezone", "UTC", "Europe/Berlin"),
        AuditChange("starts_at", "", "2026-11-10T00:00:00Z"),
        AuditChange("shadow_mode", "false", "true"),
    )
    # the first subscription: every field from nothing
    assert created.changed
    assert AuditChange("plan", "", "pro") in created.changes
    assert AuditChange("packs", "", "1") in created.changes
    assert not {"limit", "major", "updated_at", "trial_plan"} & {c.field for c in created.changes}


async def test_the_same_subscription_again_records_a_change_of_nothing(trail: Trail) -> None:
    sub = Subscription("acme", "pro", packs=2)
    version = await subscribe(trail, sub, 0)
    await subscribe(trail, sub, version, NOW + timedelta(seconds=5))
    newest = (await trail.records())[0]
    assert (newest.changed, newest.changes) == (False, ())


async def test_a_stale_subscription_change_records_nothing(
    trail: Trail, redis_db: redis.Redis
) -> None:
    await subscribe(trail, Subscription("acme", "pro"), 0)
    stale = await trail.store.set_subscription(
        resolve(Subscription("acme", "starter"), PlanCatalog()), NOW, 0, audit("SetSubscription")
    )
    assert stale is None
    assert redis_db.xlen(AUDIT_KEY) == 1


async def test_a_merge_records_its_counts_and_no_identity(
    trail: Trail, redis_db: redis.Redis
) -> None:
    await trail.store.decide(
        DecideRequest("acme", PERIOD, to_ms(NOW), EXPIRES, POLICY, "", [one(1), one(2)])
    )
    request = MergeRequest("acme", PERIOD.key, EXPIRES, one(1), [one(2)], audit("Merge"))
    merged = await trail.store.merge(request)
    await trail.store.merge(request)  # again: folds nothing more
    again, first = await trail.records()
    assert (first.method, first.changed) == ("Merge", True)
    assert first.changes == (
        AuditChange("identities_folded", "", "1"),
        AuditChange("uncounted", "", "1"),
    )
    assert (again.changed, again.changes) == (False, ())
    written = stream_bytes(redis_db)
    for key in (merged.survivor, *one(1).primaries, *one(2).primaries):
        assert key not in written


async def test_an_exemption_records_how_many_contacts_and_no_identity(
    trail: Trail, redis_db: redis.Redis
) -> None:
    contacts = [one(3), one(4)]
    reply = await trail.store.set_exempt(
        ExemptRequest("acme", contacts, exempt=True, audit=audit("SetExempt"))
    )
    await trail.store.set_exempt(
        ExemptRequest("acme", contacts, exempt=True, audit=audit("SetExempt"))
    )
    await trail.store.set_exempt(
        ExemptRequest("acme", [one(4)], exempt=False, audit=audit("SetExempt"))
    )
    countable, again, exempted = await trail.records()
    assert (exempted.changed, exempted.changes) == (
        True,
        (AuditChange("contacts_exempted", "", "2"),),
    )
    assert (again.changed, again.changes) == (False, ())
    assert countable.changes == (AuditChange("contacts_countable", "", "1"),)
    written = stream_bytes(redis_db)
    for key in (*reply.identities, *one(3).primaries, *one(4).primaries):
        assert key not in written


async def test_records_older_than_the_retention_go_and_the_stream_expires_after_it(
    trail: Trail, redis_db: redis.Redis
) -> None:
    sub = Subscription("acme", "pro")
    version = await subscribe(trail, sub, 0)
    version = await subscribe(trail, sub, version, NOW + timedelta(days=RETENTION_DAYS - 1))
    assert redis_db.xlen(AUDIT_KEY) == 2
    last = NOW + timedelta(days=RETENTION_DAYS, hours=1)
    await subscribe(trail, sub, version, last)
    # the first is older than the retention at the last: gone
    assert [r.at for r in await trail.records()] == [
        last,
        NOW + timedelta(days=RETENTION_DAYS - 1),
    ]
    # and the stream goes a retention after its last record, by Redis's own clock
    assert RETENTION_DAYS * DAY_MS - 60_000 < redis_db.pttl(AUDIT_KEY) <= RETENTION_DAYS * DAY_MS


async def test_ids_increase_even_when_a_clock_runs_behind(trail: Trail) -> None:
    sub = Subscription("acme", "pro")
    version = await subscribe(trail, sub, 0)
    await subscribe(trail, sub, version, NOW - timedelta(seconds=30))
    newest, oldest = await trail.records()
    assert newest.id > oldest.id
    assert newest.id.startswith(f"{to_ms(NOW)}-")
    assert newest.at == NOW - timedelta(seconds=30)  # the record says when its call was made


async def test_records_are_read_newest_first_before_an_id_and_from_an_instant(
    trail: Trail,
) -> None:
    sub = Subscription("acme", "pro")
    version = 0
    for minute in range(5):
        version = await subscribe(trail, sub, version, NOW + timedelta(minutes=minute))
    every = await trail.records()
    assert [r.at for r in every] == [NOW + timedelta(minutes=m) for m in (4, 3, 2, 1, 0)]
    assert [r.id for r in await trail.records(before_id=every[1].id)] == [r.id for r in every[2:]]
    since = to_ms(NOW + timedelta(minutes=3))
    assert [r.id for r in await trail.records(oldest_ms=since)] == [r.id for r in every[:2]]

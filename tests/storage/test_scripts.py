"""Each Lua script's reply, as the store decodes it, against a real Redis; no gRPC."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime
from importlib import resources

import pytest
import redis

from sidecar.domain.audit import AuditContext
from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.clock import to_ms
from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Policy, Reason
from sidecar.domain.errors import StaleSubscription, StorageError
from sidecar.domain.period import BillingPeriod, period_at
from sidecar.domain.ports import DecideReply, DecideRequest, ExemptRequest, MergeRequest
from sidecar.domain.subscription import Subscription, resolve
from sidecar.storage.keys import WorkspaceKeys
from sidecar.storage.store import RedisStore
from tests.support.constants import SMALL_POLICY as POLICY

LUA = resources.files("sidecar.storage") / "lua"
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
PERIOD = period_at(NOW)
EXPIRES = to_ms(datetime(2027, 2, 1, tzinfo=UTC))
AUDIT = AuditContext("ops", "Test", to_ms(NOW))


def key(n: int) -> bytes:
    return n.to_bytes(14, "big")


def one(n: int) -> KeyedContact:
    return KeyedContact((key(n),))


async def decide(
    store: RedisStore,
    *contacts: KeyedContact,
    dry_run: bool = False,
    version: str = "",
    period: BillingPeriod = PERIOD,
    policy: Policy = POLICY,
) -> DecideReply:
    return await store.decide(
        DecideRequest("acme", period, to_ms(NOW), EXPIRES, policy, version, contacts, dry_run)
    )


async def test_decide_answers_one_outcome_per_contact_in_order(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    reply = await decide(store, one(1), one(2), one(1), one(3))
    assert [o.reason for o in reply.outcomes] == [
        Reason.ADMITTED,
        Reason.ADMITTED,
        Reason.ALREADY_ACTIVE,
        Reason.LIMIT_REACHED,
    ]
    assert [o.identity for o in reply.outcomes] == [key(1), key(2), key(1), key(3)]
    assert not any(o.shadowed or o.conflict or o.visitor_merged for o in reply.outcomes)
    assert (reply.active, reply.limit, reply.plan, reply.trial_until_ms) == (2, 2, "starter", 0)
    members = WorkspaceKeys("acme").members(PERIOD.key)
    assert redis_db.smembers(members) == {key(1), key(2)}
    assert redis_db.pexpiretime(members) == EXPIRES


async def test_a_dry_run_reports_usage_as_it_stands_and_writes_nothing(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    await decide(store, one(1))
    before = {k: redis_db.type(k) for k in redis_db.scan_iter()}
    reply = await decide(store, one(1), one(2), one(3), dry_run=True)
    assert [o.reason for o in reply.outcomes] == [
        Reason.ALREADY_ACTIVE,
        Reason.WITHIN_LIMIT,
        Reason.LIMIT_REACHED,
    ]
    assert (reply.active, reply.limit) == (1, 2)
    assert {k: redis_db.type(k) for k in redis_db.scan_iter()} == before
    assert redis_db.scard(WorkspaceKeys("acme").members(PERIOD.key)) == 1


async def test_decide_refuses_a_stale_subscription_version_before_deciding(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    starts = datetime(2026, 11, 10, tzinfo=UTC)
    sub = Subscription("acme", "pro", timezone="Europe/Berlin", starts_at=starts)
    assert await store.set_subscription(resolve(sub, PlanCatalog()), NOW, 0, AUDIT) == 1
    with pytest.raises(StaleSubscription) as raised:
        await decide(store, one(1))
    assert raised.value.basis == SubscriptionBasis("Europe/Berlin", to_ms(starts), "1")
    assert await store.period_basis("acme") == raised.value.basis
    assert redis_db.scard(WorkspaceKeys("acme").members(PERIOD.key)) == 0


async def test_shadow_mode_allows_over_the_limit_without_counting(store: RedisStore) -> None:
    sub = Subscription("acme", "enterprise", custom_limit=1, shadow_mode=True)
    version = await store.set_subscription(resolve(sub, PlanCatalog()), NOW, 0, AUDIT)
    reply = await decide(store, one(1), one(2), version=str(version))
    assert [(o.reason, o.shadowed) for o in reply.outcomes] == [
        (Reason.ADMITTED, False),
        (Reason.LIMIT_REACHED, True),
    ]
    assert reply.active == 1


async def test_flags_mark_conflicts_and_merged_visitors(store: RedisStore) -> None:
    roomy = dataclasses.replace(POLICY, limit=10)
    visitor = KeyedContact((), key(9))
    assert (await decide(store, visitor, one(1), one(2), policy=roomy)).active == 3
    # the visitor turns out to be contact 1: counted once, under contact 1
    reply = await decide(store, KeyedContact((key(1),), key(9)), policy=roomy)
    assert (reply.outcomes[0].visitor_merged, reply.outcomes[0].identity) == (True, key(1))
    assert reply.active == 2
    # contacts 1 and 2 seen together: two known identities, counted under the first
    reply = await decide(store, KeyedContact((key(1), key(2))), policy=roomy)
    assert (reply.outcomes[0].conflict, reply.outcomes[0].identity) == (True, key(1))


async def test_merge_answers_survivor_folded_uncounted_active(store: RedisStore) -> None:
    await decide(store, one(1), one(2))
    merged = await store.merge(MergeRequest("acme", PERIOD.key, EXPIRES, one(1), [one(2)], AUDIT))
    assert (merged.survivor, merged.folded, merged.uncounted, merged.active) == (
        key(1),
        1,
        1,
        1,
    )
    again = await store.merge(MergeRequest("acme", PERIOD.key, EXPIRES, one(1), [one(2)], AUDIT))
    assert (again.folded, again.uncounted, again.active) == (0, 0, 1)
    reply = await decide(store, one(2))
    assert (reply.outcomes[0].reason, reply.outcomes[0].identity) == (
        Reason.ALREADY_ACTIVE,
        key(1),
    )


async def test_set_exempt_answers_changes_and_identities(store: RedisStore) -> None:
    await store.merge(MergeRequest("acme", PERIOD.key, EXPIRES, one(1), [one(2)], AUDIT))
    reply = await store.set_exempt(
        ExemptRequest("acme", [one(2), one(3)], exempt=True, audit=AUDIT)
    )
    # contact 2 resolves to 1: both keys marked; contact 3 is itself
    assert reply.identities == [key(1), key(3)]
    assert reply.changed == 3
    decided = await decide(store, one(1), one(3))
    assert [o.reason for o in decided.outcomes] == [Reason.EXEMPT, Reason.EXEMPT]
    assert decided.active == 0
    undone = await store.set_exempt(ExemptRequest("acme", [one(3)], exempt=False, audit=AUDIT))
    assert undone.changed == 1


async def test_subscription_and_history_read_back_what_was_written(store: RedisStore) -> None:
    assert (await store.subscription("acme")).resolved is None
    assert await store.period_basis("acme") == SubscriptionBasis()
    sub = Subscription("acme", "pro", packs=2, timezone="UTC", platform_version="7.3.0")
    resolved = resolve(sub, PlanCatalog())
    version = await store.set_subscription(resolved, NOW, 0, AUDIT)
    stored = await store.subscription("acme")
    assert stored.resolved is not None
    assert stored.resolved.subscription == sub
    assert (stored.resolved.limit, stored.resolved.updated_at) == (resolved.limit, NOW)
    assert stored.trial_until_ms == 0
    await decide(store, one(1), version=str(version))
    history = await store.history("acme")
    assert [(p.key, p.name, p.active, p.limit) for p in history] == [
        (PERIOD.key, PERIOD.name, 1, resolved.limit)
    ]
    page = await store.scan_members("acme", PERIOD.key, 0, 10)
    assert (page.cursor, page.keys, page.total) == (0, [key(1)], 1)


async def test_events_come_back_from_the_stream(store: RedisStore) -> None:
    await decide(store, one(1), one(2), one(3))
    assert await store.workspaces() == ["acme"]
    events = await store.read_events({"acme": "0-0"}, block_ms=100, count=10)
    assert [(e.type, e.threshold_percent, e.active, e.limit) for e in events] == [
        ("THRESHOLD_CROSSED", 50, 1, 2),
        ("THRESHOLD_CROSSED", 100, 2, 2),
        ("LIMIT_REACHED", 0, 2, 2),
    ]
    assert {(e.workspace_id, e.period, e.at_ms) for e in events} == {
        ("acme", PERIOD.name, to_ms(NOW))
    }


async def test_concurrent_decisions_never_pass_the_limit(store: RedisStore) -> None:
    replies = await asyncio.gather(*(decide(store, one(n)) for n in range(50)))
    admitted = [o for r in replies for o in r.outcomes if o.reason is Reason.ADMITTED]
    assert len(admitted) == POLICY.limit


async def test_a_script_error_names_the_lua_file_and_line(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    # a damaged subscription hash: a limit that is not a number
    redis_db.hset(WorkspaceKeys("acme").subscription, mapping={"limit": "many", "version": "7"})
    with pytest.raises(StorageError) as raised:
        await decide(store, one(1), version="7")
    assert not raised.value.transient
    source = (LUA / "decide.lua").read_text().splitlines()
    compare = next(
        i for i, line in enumerate(source, 1) if "if state.active < state.limit and not dry" in line
    )
    assert f"decide.lua:{compare}:" in str(raised.value)
    assert "user_script" not in str(raised.value)

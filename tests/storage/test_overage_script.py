"""decide.lua's overage allowance against a real Redis, as the store decodes it; no gRPC."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from sidecar.domain.audit import AuditContext
from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.clock import to_ms
from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Reason
from sidecar.domain.period import BillingPeriod, period_at
from sidecar.domain.ports import DecideReply, DecideRequest
from sidecar.domain.subscription import Subscription, resolve
from sidecar.storage.keys import WorkspaceKeys
from sidecar.storage.store import RedisStore
from tests.support.constants import SMALL_POLICY as POLICY

NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
PERIOD = period_at(NOW)
BEFORE = period_at(datetime(2026, 10, 31, 23, 0, tzinfo=UTC))
EXPIRES = to_ms(datetime(2027, 2, 1, tzinfo=UTC))


def one(n: int) -> KeyedContact:
    return KeyedContact((n.to_bytes(14, "big"),))


async def subscribe(store: RedisStore, limit: int, percent: int, version: int = 0) -> str:
    sub = Subscription("acme", "enterprise", custom_limit=limit, overage_percent=percent)
    audit = AuditContext("ops", "SetSubscription", to_ms(NOW))
    return str(await store.set_subscription(resolve(sub, PlanCatalog()), NOW, version, audit))


async def decide(
    store: RedisStore,
    version: str,
    *contacts: KeyedContact,
    dry_run: bool = False,
    period: BillingPeriod = PERIOD,
    late: bool = False,
) -> DecideReply:
    return await store.decide(
        DecideRequest(
            "acme", period, to_ms(NOW), EXPIRES, POLICY, version, contacts, dry_run, late=late
        )
    )


async def test_a_batch_writes_the_overage_once_and_reports_it(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    version = await subscribe(store, 10, 30)
    reply = await decide(store, version, *(one(n) for n in range(15)))
    assert [(o.reason, o.overage) for o in reply.outcomes[9:]] == [
        (Reason.ADMITTED, False),
        *[(Reason.ADMITTED, True)] * 3,
        *[(Reason.LIMIT_REACHED, False)] * 2,
    ]
    assert (reply.active, reply.limit, reply.overage) == (13, 10, 3)
    counts = redis_db.hgetall(WorkspaceKeys("acme").counts)
    assert counts[f"{PERIOD.key}:overage".encode()] == b"3"
    assert counts[f"{PERIOD.key}:packs".encode()] == b"0"
    # a dry run reports the overage as it stands
    dry = await decide(store, version, one(99), dry_run=True)
    assert (dry.outcomes[0].reason, dry.overage) == (Reason.LIMIT_REACHED, 3)


async def test_no_subscription_has_no_overage(store: RedisStore) -> None:
    reply = await decide(store, "", one(1), one(2), one(3))
    assert [(o.reason, o.overage) for o in reply.outcomes] == [
        (Reason.ADMITTED, False),
        (Reason.ADMITTED, False),
        (Reason.LIMIT_REACHED, False),
    ]
    assert reply.overage == 0


async def test_a_late_decision_takes_overage_beyond_the_limit_recorded_for_its_period(
    store: RedisStore, redis_db: redis.Redis
) -> None:
    version = await subscribe(store, 10, 20)
    await decide(store, version, *(one(n) for n in range(10)), period=BEFORE)
    version = await subscribe(store, 100, 20, version=int(version))  # the limit went up since
    late = await decide(store, version, one(10), one(11), one(12), period=BEFORE, late=True)
    assert [(o.reason, o.overage) for o in late.outcomes] == [
        (Reason.ADMITTED, True),
        (Reason.ADMITTED, True),
        (Reason.LIMIT_REACHED, False),
    ]
    assert (late.active, late.limit, late.overage) == (12, 10, 2)
    counts = redis_db.hgetall(WorkspaceKeys("acme").counts)
    assert counts[f"{BEFORE.key}:overage".encode()] == b"2"
    assert f"{PERIOD.key}:overage".encode() not in counts

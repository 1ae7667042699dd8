"""Exact limits under concurrency: many client tasks, two sidecar processes, one Redis."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest
import redis

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.calls import activate_concurrently
from tests.support.redis_servers import RedisServer
from tests.support.sidecar_process import SidecarProcess, enforcer_stubs

LIMIT = 50


@pytest.fixture
async def two_processes(
    redis_server: RedisServer, redis_db: redis.Redis, engine_env: str
) -> AsyncIterator[list[pb_grpc.EnforcerStub]]:
    procs = [SidecarProcess(redis_server.url, MAC_DEFAULT_LIMIT=str(LIMIT)) for _ in range(2)]
    async with enforcer_stubs(procs) as stubs:
        yield stubs


async def hammer(
    stubs: list[pb_grpc.EnforcerStub], contacts: list[pb.Contact]
) -> list[pb.Decision]:
    """Activate every contact once, spread over many tasks and both processes."""
    decisions = await activate_concurrently(stubs, "acme", contacts)
    assert len(decisions) == len(contacts)
    return decisions


async def test_concurrent_activations_admit_exactly_the_limit(
    two_processes: list[pb_grpc.EnforcerStub], redis_db: redis.Redis
) -> None:
    contacts = [pb.Contact(email=f"c{n}@example.com") for n in range(LIMIT * 4)]
    decisions = await hammer(two_processes, contacts)
    reasons = Counter(d.reason for d in decisions)
    assert reasons[pb.REASON_ADMITTED] == LIMIT
    assert reasons[pb.REASON_LIMIT_REACHED] == LIMIT * 3
    members = list(redis_db.scan_iter("mac:{acme}:members:*"))
    assert len(members) == 1
    assert redis_db.scard(members[0]) == LIMIT
    admitted = {d.contact_key for d in decisions if d.reason == pb.REASON_ADMITTED}
    assert len(admitted) == LIMIT


async def test_the_same_contacts_repeated_concurrently_count_once(
    two_processes: list[pb_grpc.EnforcerStub], redis_db: redis.Redis
) -> None:
    distinct = [pb.Contact(phone=f"+4930{n:07d}") for n in range(LIMIT // 2)]
    contacts = distinct * 8
    decisions = await hammer(two_processes, contacts)
    reasons = Counter(d.reason for d in decisions)
    assert reasons[pb.REASON_ADMITTED] == len(distinct)
    assert reasons[pb.REASON_ALREADY_ACTIVE] == len(contacts) - len(distinct)
    first_admissions = Counter(d.contact_key for d in decisions if d.reason == pb.REASON_ADMITTED)
    assert set(first_admissions.values()) == {1}


async def test_concurrent_batches_admit_exactly_the_limit(
    two_processes: list[pb_grpc.EnforcerStub], redis_db: redis.Redis
) -> None:
    batches = [[pb.Contact(id=f"crm-{b}-{n}") for n in range(20)] for b in range(12)]
    responses = await asyncio.gather(
        *(
            two_processes[i % 2].ActivateBatch(
                pb.ActivateBatchRequest(workspace_id="acme", contacts=batch)
            )
            for i, batch in enumerate(batches)
        )
    )
    admitted = sum(d.reason == pb.REASON_ADMITTED for r in responses for d in r.decisions)
    assert admitted == LIMIT
    assert max(r.usage.active for r in responses) == LIMIT

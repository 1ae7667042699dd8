"""Month rollover with an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import redis

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys


async def test_contact_is_new_again_on_the_first_of_the_month(
    enforcer_stub: pb_grpc.EnforcerStub, clock: ManualClock, redis_db: redis.Redis
) -> None:
    ana = pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(email="ana@example.com"))
    bob = pb.ActivateRequest(workspace_id="acme", contact=pb.Contact(email="bob@example.com"))
    clock.set(datetime(2026, 11, 30, 23, 59, 59, 999000, tzinfo=UTC))
    assert (await enforcer_stub.Activate(ana)).reason == pb.REASON_ADMITTED
    assert (await enforcer_stub.Activate(bob)).reason == pb.REASON_ADMITTED
    assert (await enforcer_stub.Activate(ana)).reason == pb.REASON_ALREADY_ACTIVE

    clock.set(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    december = await enforcer_stub.Activate(ana)
    assert december.reason == pb.REASON_ADMITTED
    assert december.usage.period == "2026-12"
    assert december.usage.active == 1

    keys = WorkspaceKeys("acme")
    assert redis_db.hget(keys.counts, "2026-11") == b"2"
    assert redis_db.hget(keys.counts, "2026-12") == b"1"
    assert redis_db.scard(keys.members("2026-11")) == 2
    # November's members stay listable for two more periods, then Redis drops them.
    expires = datetime.fromtimestamp(redis_db.pexpiretime(keys.members("2026-11")) / 1000, UTC)
    assert expires == datetime(2027, 2, 1, tzinfo=UTC)

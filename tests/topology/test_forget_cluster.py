"""Forget and the links sweep on a Redis Cluster: people of workspaces on every master erased
exactly (each script in its workspace's slot, the AOF rewrite asked of the master holding it),
twice idempotently, and links swept on every master."""

from __future__ import annotations

from datetime import timedelta

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.storage.keys import WorkspaceKeys
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import RedisCluster


async def test_forget_on_every_master_is_exact_and_idempotent(
    cluster: RedisCluster, cluster_sidecars: SidecarFactory, clock: ManualClock
) -> None:
    stub = await cluster_sidecars()
    admin = cluster_sidecars.admin()
    workspaces = cluster.workspaces_on_each_master("forget", per_master=2)
    ana = pb.Contact(id="ana", email="ana@example.com", phone="+5511987654321")
    for ws in workspaces:
        await stub.Activate(pb.ActivateRequest(workspace_id=ws, contact=ana))
        await stub.Activate(pb.ActivateRequest(workspace_id=ws, contact=pb.Contact(id="bo")))

    for ws in workspaces:
        request = admin_pb.ForgetRequest(workspace_id=ws, contact=pb.Contact(email=ana.email))
        first = await admin.Forget(request, metadata=AUTH)
        second = await admin.Forget(request, metadata=AUTH)
        assert (first.forgotten, first.identifiers_removed, first.periods) == (True, 3, 1)
        assert (second.forgotten, second.identifiers_removed) == (False, 0)
        keys = WorkspaceKeys(ws)
        with cluster.master_of(keys.links).client() as client:
            assert [k for k in client.hkeys(keys.links) if len(k) == 14] == []
            assert client.hlen(keys.identities) == 0
            assert client.scard(keys.members("2026-11")) == 2
        again = await stub.Activate(pb.ActivateRequest(workspace_id=ws, contact=ana))
        assert (again.reason, again.usage.active) == (pb.REASON_ADMITTED, 3)

    # the links sweep on every master: the people counted in November expire in February
    clock.advance(timedelta(days=80))
    service = cluster_sidecars.last
    assert await service.link_expiry.sweep(workspaces) == len(workspaces)
    for ws in workspaces:
        keys = WorkspaceKeys(ws)
        with cluster.master_of(keys.links).client() as client:
            assert [k for k in client.hkeys(keys.links) if len(k) == 14] == []

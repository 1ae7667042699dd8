"""The audit trail on a Redis Cluster: each workspace's records land in its own slot, on the
master that holds the workspace's other keys, and are listed from there."""

from __future__ import annotations

from typing import Any

from redis.crc import key_slot

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import fill, subscribe
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import RedisCluster


async def test_records_land_in_the_workspaces_slot_and_list_from_there(
    cluster: RedisCluster, cluster_sidecars: SidecarFactory
) -> None:
    stub = await cluster_sidecars()
    admin = cluster_sidecars.admin()
    workspaces = cluster.workspaces_on_each_master("audit", per_master=2)
    for ws in workspaces:
        await subscribe(admin, ws, plan="pro", packs=1)
        await subscribe(admin, ws, packs=2)
        await fill(stub, 0, 2, ws=ws)
        await admin.Merge(
            admin_pb.MergeRequest(
                workspace_id=ws,
                sources=[pb.Contact(email="p1@example.com")],
                target=pb.Contact(email="p0@example.com"),
            ),
            metadata=AUTH,
        )
    for ws in workspaces:
        keys = WorkspaceKeys(ws)
        # the audit stream sits with the subscription: one slot, one script
        assert key_slot(keys.audit.encode()) == key_slot(keys.subscription.encode())
        with cluster.master_of(keys.audit).client() as client:
            entries: Any = client.xrange(keys.audit)
        assert [f[b"method"] for _, f in entries] == [b"SetSubscription"] * 2 + [b"Merge"], ws
        listed = await admin.ListAuditRecords(
            admin_pb.ListAuditRecordsRequest(workspace_id=ws, page_size=2), metadata=AUTH
        )
        assert [r.method for r in listed.records] == ["Merge", "SetSubscription"]
        assert [(c.field, c.after) for c in listed.records[0].changes] == [
            ("identities_folded", "1"),
            ("uncounted", "1"),
        ]
        rest = await admin.ListAuditRecords(
            admin_pb.ListAuditRecordsRequest(
                workspace_id=ws, page_size=2, page_token=listed.next_page_token
            ),
            metadata=AUTH,
        )
        assert [(r.method, r.changes[0].field) for r in rest.records] == [
            ("SetSubscription", "plan")
        ]
        assert not rest.next_page_token

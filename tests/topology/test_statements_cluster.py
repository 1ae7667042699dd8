"""Closed periods and statements on a Redis Cluster: workspaces on every master closed by the
sweep and listed page by page, each once."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sidecar.domain.clock import ManualClock
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import fill
from tests.support.constants import AUTH
from tests.support.sidecars import SidecarFactory
from tests.support.topologies import RedisCluster


async def test_statements_of_workspaces_on_every_master_are_listed_once(
    cluster: RedisCluster, cluster_sidecars: SidecarFactory, clock: ManualClock
) -> None:
    stub = await cluster_sidecars()
    service = cluster_sidecars.last
    admin = cluster_sidecars.admin()
    workspaces = cluster.workspaces_on_each_master("bill", per_master=10)
    for n, ws in enumerate(workspaces):
        await fill(stub, 0, n % 4 + 1, ws=ws)

    clock.set(datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    half = workspaces[::2]
    assert await service.closing.close_due(half) == len(half)
    assert (await service.closing.sweep()).closed == len(workspaces) - len(half)
    for ws in workspaces:
        with cluster.master_of(WorkspaceKeys(ws).counts).client() as client:
            entries: Any = client.xrange(WorkspaceKeys(ws).events)
            assert [f[b"type"] for _, f in entries] == [b"PERIOD_CLOSED"], ws

    clock.set(datetime(2026, 12, 1, 12, 5, tzinfo=UTC))
    found: list[admin_pb.Statement] = []
    token = ""
    while True:
        page = await admin.ListStatements(
            admin_pb.ListStatementsRequest(period="2026-11", page_size=7, page_token=token),
            metadata=AUTH,
        )
        assert len(page.statements) <= 7
        found.extend(page.statements)
        token = page.next_page_token
        if not token:
            break
    assert sorted(s.workspace_id for s in found) == sorted(workspaces)
    active = {s.workspace_id: s.active for s in found}
    assert active == {ws: n % 4 + 1 for n, ws in enumerate(workspaces)}

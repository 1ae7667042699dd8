"""Closed periods in Redis: each workspace's counted and closed periods read in pipelines,
periods closed with ``close.lua`` (which writes the statement and records PERIOD_CLOSED), the
registry of workspaces scanned in steps, and the sweep's lease.

Every call but the scan and the lease touches the keys of one workspace (one slot); a batch
is one pipeline, which a cluster client splits per node.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sidecar import metrics
from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.clock import from_ms, to_ms
from sidecar.domain.closing_ports import CloseReply, CloseRequest, WorkspacePeriods
from sidecar.domain.period import BillingPeriod
from sidecar.domain.statement import Statement, is_count_key
from sidecar.storage import calls, codec, records, scripts
from sidecar.storage.calls import Pooled
from sidecar.storage.connections import Client
from sidecar.storage.keys import CLOSE_LEASE, REGISTRY, WorkspaceKeys

_CLOSED = ":closed"


class RedisPeriodClosing:
    """Implements ``CloseStore`` on a redis-py client (the operator pool)."""

    def __init__(self, client: Client) -> None:
        self._connection = Pooled(client)

    async def scan_workspaces(self, cursor: int, count: int) -> tuple[int, list[str]]:
        """One ``SSCAN`` step over ``mac:workspaces``."""
        next_cursor, found = await calls.command(
            self._connection, "scan_workspaces", "SSCAN", REGISTRY, cursor, "COUNT", count
        )
        return int(next_cursor), [m.decode() for m in found]

    async def workspace_periods(self, workspace_ids: Sequence[str]) -> list[WorkspacePeriods]:
        """The counts hash and the subscription basis of each workspace, in one pipeline."""
        if not workspace_ids:
            return []
        async with self._connection.client.pipeline(transaction=False) as pipe:
            for workspace_id in workspace_ids:
                keys = WorkspaceKeys(workspace_id)
                pipe.execute_command("HGETALL", keys.counts)
                pipe.execute_command(
                    "HMGET", keys.subscription, "timezone", "starts_at", "version", "default_region"
                )
            replies = await calls.send("workspace_periods", pipe.execute())
        return [
            workspace_periods(
                workspace_id,
                records.decode_hash(replies[2 * i]),
                codec.basis_reply(replies[2 * i + 1]),
            )
            for i, workspace_id in enumerate(workspace_ids)
        ]

    async def close_periods(self, requests: Sequence[CloseRequest]) -> list[CloseReply]:
        """Run ``close.lua`` for each request, in one pipeline."""
        if not requests:
            return []
        each_call = []
        for request in requests:
            keys = WorkspaceKeys(request.workspace_id)
            each_call.append(
                (
                    (keys.counts, keys.trial, keys.events, keys.statements),
                    close_args(request),
                )
            )
        replies = await calls.script_batch(self._connection, scripts.CLOSE, each_call)
        closed = [
            close_reply(request.workspace_id, request.period.key, reply)
            for request, reply in zip(requests, replies, strict=True)
        ]
        metrics.PERIODS_CLOSED.inc(sum(reply.closed_now for reply in closed))
        return closed

    async def period_closed_at(self, workspace_id: str, period_key: str) -> int:
        """``HGET counts <period_key>:closed``, 0 when absent."""
        found = await calls.command(
            self._connection,
            "period_closed_at",
            "HGET",
            WorkspaceKeys(workspace_id).counts,
            period_key + _CLOSED,
        )
        return int(found or 0)

    async def hold_lease(self, owner: str, lease_ms: int) -> bool:
        """Extend the sweep's lease when ``owner`` holds it, else take it when it is free
        (``SET NX PX``). The lease scripts are the webhook leases' (compare, then extend or
        delete): the same mechanism on a key of its own."""
        if await calls.script(
            self._connection, scripts.WEBHOOK_RENEW, (CLOSE_LEASE,), (owner, lease_ms)
        ):
            return True
        taken = await calls.command(
            self._connection, "close_lease", "SET", CLOSE_LEASE, owner, "NX", "PX", lease_ms
        )
        return bool(taken)

    async def release_lease(self, owner: str) -> None:
        """Delete the sweep's lease, if it is still ``owner``'s."""
        await calls.script(self._connection, scripts.WEBHOOK_RELEASE, (CLOSE_LEASE,), (owner,))


def workspace_periods(
    workspace_id: str, counts: dict[str, str], basis: SubscriptionBasis
) -> WorkspacePeriods:
    """A counts hash as the counted periods and the closed ones (key -> closed at)."""
    return WorkspacePeriods(
        workspace_id,
        basis,
        [key for key in counts if is_count_key(key)],
        {k.removesuffix(_CLOSED): int(v) for k, v in counts.items() if k.endswith(_CLOSED)},
    )


def close_args(request: CloseRequest) -> list[Any]:
    """``close.lua``'s ARGV: ``codec.CLOSE_ARGV`` in order."""
    period = request.period
    return [
        period.key,
        period.name,
        to_ms(period.start),
        to_ms(period.end),
        request.now_ms,
        request.limit,
        request.plan,
        request.events_max,
        request.workspace_id,
    ]


def close_reply(workspace_id: str, period_key: str, reply: list[Any]) -> CloseReply:
    """A ``close.lua`` reply (``codec.CLOSE_REPLY``)."""
    got = dict(zip(codec.CLOSE_REPLY, reply, strict=True))
    text = got["statement"]
    return CloseReply(
        closed_now=int(got["closed"]) == 1,
        closed_at_ms=int(got["closed_at_ms"]),
        statement=statement(workspace_id, period_key, text) if text else None,
    )


def statement(workspace_id: str, period_key: str, text: bytes | str) -> Statement:
    """A statement as ``close.lua`` wrote it (JSON of decimal strings)."""
    fields = json.loads(text)
    trial_until = int(fields["trial_until_ms"])
    return Statement(
        workspace_id=workspace_id,
        period=BillingPeriod(
            fields["period"],
            period_key,
            from_ms(int(fields["start_ms"])),
            from_ms(int(fields["end_ms"])),
        ),
        active=int(fields["active"]),
        limit=int(fields["limit"]),
        plan=fields["plan"],
        packs=int(fields["packs"]),
        overage=int(fields["overage"]),
        trial_plan=fields["trial_plan"],
        trial_ends_at=from_ms(trial_until) if fields["trial_plan"] else None,
        closed_at=from_ms(int(fields["closed_at_ms"])),
    )

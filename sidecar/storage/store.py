"""The service's state in Redis: every state change one Lua script, every command sent
through ``calls`` (which wraps each Redis failure as ``StorageError``)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import Any

from sidecar import metrics
from sidecar.domain.audit import DAY_MS, RETENTION_DAYS, AuditContext
from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.cache import LruCache
from sidecar.domain.decision import Event, Merged, PeriodCount, Reason
from sidecar.domain.errors import StorageError
from sidecar.domain.ports import (
    DecideReply,
    DecideRequest,
    ExemptReply,
    ExemptRequest,
    MemberPage,
    MergeRequest,
    StoredSubscription,
)
from sidecar.domain.subscription import Resolved
from sidecar.storage import audit as audit_trail
from sidecar.storage import calls, codec, records, scripts
from sidecar.storage.calls import Connection, Pooled
from sidecar.storage.connections import RedisConnections
from sidecar.storage.keys import REGISTRY, WorkspaceKeys

# Workspaces (and their decide.lua keys per period) remembered by one process.
CACHE_SIZE = 100_000


class RedisStore:
    """Implements every storage port on one Redis.

    Decisions, merges and exemptions go over the pipelined connection; operator reads over
    the pool; event reads, which wait, over the blocking pool.

    :param cache_size: workspaces whose registration and decide keys are remembered.
    :param audit_retention_days: how long the audit records of changes are kept.
    """

    def __init__(
        self,
        connections: RedisConnections,
        *,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 0,
        cache_size: int = CACHE_SIZE,
        audit_retention_days: int = RETENTION_DAYS,
    ) -> None:
        self._pool = Pooled(connections.pool)
        self._blocking = Pooled(connections.blocking)
        self._pipelined = connections.pipelined
        self._cluster = connections.cluster
        self._wait = (wait_replicas, wait_timeout_ms)
        self._registered: LruCache[str, bool] = LruCache(cache_size)
        self._decide_keys: LruCache[tuple[str, str], tuple[str, ...]] = LruCache(cache_size)
        self._audit_retention_ms = audit_retention_days * DAY_MS

    async def load_scripts(self) -> None:
        """Register every script with Redis, on every master, so the first calls find them."""
        for script in scripts.ALL:
            await calls.load(self._pipelined, script)

    async def ping(self) -> None:
        """Raise ``StorageError`` unless Redis answers on both the pipelined connection and
        the pool, and takes writes."""
        await calls.each(self._pipelined, "ping", "PING")
        await calls.command(self._pool, "ping", "PING")
        # answering is not enough: decisions write
        await calls.send("probe_writes", self._pipelined.probe_writes())

    def _execute_durably(self, *command: Any) -> Awaitable[Any]:
        """Send ``command``; a reply that admitted a contact is returned only once
        ``MAC_REDIS_WAIT_REPLICAS`` replicas have it."""
        replicas, timeout_ms = self._wait
        return self._pipelined.execute_durably(command, replicas, timeout_ms, _admitted)

    async def _register(self, workspace_id: str) -> None:
        # Before a workspace's first decision in this process, so that WatchEvents for all
        # workspaces knows its stream before any event can be in it. Idempotent.
        if not self._registered.get(workspace_id, False):
            await calls.command(self._pipelined, "register", "SADD", REGISTRY, workspace_id)
            self._registered.put(workspace_id, True)

    def _decide_script_keys(self, workspace_id: str, period_key: str) -> tuple[str, ...]:
        found = self._decide_keys.get((workspace_id, period_key))
        if found is None:
            keys = WorkspaceKeys(workspace_id)
            found = (
                keys.members(period_key),
                keys.counts,
                keys.subscription,
                keys.trial,
                keys.flags(period_key),
                keys.events,
                keys.links,
                keys.exempt,
                keys.usage(period_key),
                keys.flood,
                keys.identities,
            )
            self._decide_keys.put((workspace_id, period_key), found)
        return found

    async def decide(self, request: DecideRequest) -> DecideReply:
        """Run ``decide.lua`` (see ``DecisionStore.decide``)."""
        if not request.dry_run:
            await self._register(request.workspace_id)
        # with MAC_REDIS_WAIT_REPLICAS, what admitted a contact waits for the replicas
        durable = not request.dry_run and self._wait[0]
        try:
            reply = await calls.script(
                self._pipelined,
                scripts.DECIDE,
                self._decide_script_keys(request.workspace_id, request.period.key),
                codec.decide_args(request),
                execute=self._execute_durably if durable else None,
            )
        except StorageError as exc:
            if not request.dry_run and exc.outcome_unknown:
                # it may have run in Redis: the contacts may be counted after all
                metrics.DECISIONS_UNKNOWN.inc()
            raise
        written = codec.events_written(reply)
        if written:
            metrics.EVENTS_RECORDED.inc(written)
        decided = codec.decide_reply(reply, request.period.name)
        if decided.overage and not request.dry_run:  # the period has overage: this call's?
            admitted = sum(1 for outcome in decided.outcomes if outcome.overage)
            if admitted:
                metrics.OVERAGE_ADMISSIONS.inc(admitted)
        if not request.dry_run:
            _count_flood_denials(decided)
        return decided

    async def period_basis(self, workspace_id: str) -> SubscriptionBasis:
        """The subscription's time zone, start, version and default phone region."""
        reply = await calls.command(
            self._pool,
            "subscription",
            "HMGET",
            WorkspaceKeys(workspace_id).subscription,
            "timezone",
            "starts_at",
            "version",
            "default_region",
        )
        return codec.basis_reply(reply)

    async def merge(self, request: MergeRequest) -> Merged:
        """Run ``merge.lua``."""
        keys = WorkspaceKeys(request.workspace_id)
        reply = await calls.script(
            self._pipelined,
            scripts.MERGE,
            (
                keys.members(request.period_key),
                keys.counts,
                keys.links,
                keys.identities,
                keys.audit,
            ),
            codec.merge_args(request, self._audit_retention_ms),
        )
        return codec.merge_reply(reply)

    async def set_exempt(self, request: ExemptRequest) -> ExemptReply:
        """Run ``set_exempt.lua``."""
        keys = WorkspaceKeys(request.workspace_id)
        reply = await calls.script(
            self._pipelined,
            scripts.SET_EXEMPT,
            (keys.exempt, keys.links, keys.audit),
            codec.exempt_args(request, self._audit_retention_ms),
        )
        return codec.exempt_reply(reply)

    async def set_subscription(
        self, resolved: Resolved, updated_at: datetime, expected_version: int, audit: AuditContext
    ) -> int | None:
        """Run ``set_subscription.lua``; return the new version (``None``: it had changed)."""
        keys = WorkspaceKeys(resolved.subscription.workspace_id)
        version = int(
            await calls.script(
                self._pipelined,
                scripts.SET_SUBSCRIPTION,
                (keys.subscription, keys.audit),
                (
                    expected_version,
                    *codec.audit_args(audit, self._audit_retention_ms),
                    ",".join(audit_trail.AUDITED_SUBSCRIPTION_FIELDS),
                    *codec.subscription_args(resolved, updated_at),
                ),
            )
        )
        return None if version < 0 else version

    async def subscription(self, workspace_id: str) -> StoredSubscription:
        """The subscription hash and the running or last trial's end."""
        keys = WorkspaceKeys(workspace_id)
        raw = await calls.command(self._pool, "subscription", "HGETALL", keys.subscription)
        until = await calls.command(self._pool, "subscription", "HGET", keys.trial, "until")
        resolved = codec.subscription(workspace_id, records.decode_hash(raw))
        return StoredSubscription(resolved, int(until or 0))

    async def breakdown(self, workspace_id: str, period_key: str) -> dict[str, int]:
        """A period's usage hash: ``ch:<channel>`` and ``d:<date>`` counts."""
        raw = await calls.command(
            self._pool, "usage", "HGETALL", WorkspaceKeys(workspace_id).usage(period_key)
        )
        return {k: int(v) for k, v in records.decode_hash(raw).items()}

    async def last_flood_ms(self, workspace_id: str) -> int:
        """When the workspace's flood guard last detected a flood (unix ms; 0 for never)."""
        found = await calls.command(
            self._pool, "flood", "HGET", WorkspaceKeys(workspace_id).flood, "at"
        )
        return int(found or 0)

    async def history(self, workspace_id: str) -> list[PeriodCount]:
        """The counts hash as one count per period."""
        raw = await calls.command(
            self._pool, "counts", "HGETALL", WorkspaceKeys(workspace_id).counts
        )
        return records.history(records.decode_hash(raw))

    async def scan_members(
        self, workspace_id: str, period_key: str, cursor: int, count: int
    ) -> MemberPage:
        """One ``SSCAN`` step over a period's members, and the set's size."""
        members = WorkspaceKeys(workspace_id).members(period_key)
        next_cursor, found = await calls.command(
            self._pool, "list_contacts", "SSCAN", members, cursor, "COUNT", count
        )
        total = await calls.command(self._pool, "list_contacts", "SCARD", members)
        return MemberPage(int(next_cursor), list(found), int(total))

    async def workspaces(self) -> list[str]:
        """Every workspace that may have events, sorted."""
        return await workspaces(self._pool)

    async def read_events(
        self, cursors: dict[str, str], block_ms: int, count: int = 100
    ) -> list[Event]:
        """Events after each workspace's cursor (``XREAD``), waiting up to ``block_ms``."""
        streams = {WorkspaceKeys(ws).events: cursor for ws, cursor in cursors.items()}
        if self._cluster:
            return await self._read_events_apart(streams, block_ms, count)
        command = ("XREAD", "COUNT", count, "BLOCK", block_ms, "STREAMS", *streams)
        reply = await calls.send(
            "read_events",
            self._blocking.execute(*command, *streams.values()),
            waits=True,
        )
        return [
            records.event(entry_id, raw)
            for _stream, entries in reply or []
            for entry_id, raw in entries
        ]

    async def read_recorded_events(self, cursors: dict[str, str], count: int) -> list[Event]:
        """Events after each workspace's cursor, at most ``count`` of each, oldest first per
        workspace, answered at once: ``XREAD`` without ``BLOCK`` (``BLOCK 0`` would wait for
        ever, ``BLOCK 1`` for Redis's next timer tick), none at every stream's end."""
        if not cursors:
            return []
        streams = {WorkspaceKeys(ws).events: cursor for ws, cursor in cursors.items()}
        if self._cluster:
            return await self._read_events_apart(streams, 0, count)
        reply = await calls.command(
            self._pool,
            "read_recorded_events",
            "XREAD",
            "COUNT",
            count,
            "STREAMS",
            *streams,
            *streams.values(),
        )
        return [
            records.event(entry_id, raw)
            for _stream, entries in reply or []
            for entry_id, raw in entries
        ]

    async def _read_events_apart(
        self, streams: dict[str, str], block_ms: int, count: int
    ) -> list[Event]:
        """``read_events`` on a cluster: one XREAD can only name streams of one slot, so each
        stream is read on its own, without waiting, in one pipeline (a round trip per node);
        when none had anything, wait ``block_ms`` and look once more."""
        for attempt in range(2):
            async with self._blocking.client.pipeline() as pipe:
                for stream, cursor in streams.items():
                    pipe.xread({stream: cursor}, count=count)
                replies = await calls.send("read_events", pipe.execute(), waits=True)
            found = [
                records.event(entry_id, raw)
                for reply in replies
                for _stream, entries in reply or []
                for entry_id, raw in entries
            ]
            if found or attempt or block_ms <= 0:
                return sorted(found, key=lambda e: _event_order(e.id))
            await asyncio.sleep(block_ms / 1000)
        return []


def _admitted(reply: Any) -> bool:
    """Whether a ``decide.lua`` reply admitted a contact (a write replicas must have)."""
    return codec.admitted_any(reply)


async def workspaces(connection: Connection) -> list[str]:
    """Every workspace that may have events (those registered before their first decision),
    sorted."""
    found = await calls.command(connection, "workspaces", "SMEMBERS", REGISTRY)
    return sorted(m.decode() for m in found)


def _event_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _count_flood_denials(decided: DecideReply) -> None:
    """Count the contacts a decision's flood guard denied (shadow mode's allowed are not)."""
    denied = sum(1 for o in decided.outcomes if o.reason is Reason.RATE_LIMITED and not o.shadowed)
    if denied:
        metrics.FLOOD_DENIALS.inc(denied)

"""The service's state in Redis: every state change one Lua script, every Redis failure wrapped
as ``StorageError`` here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import Any

from redis import exceptions as rex

from sidecar import metrics
from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.decision import Event, Merged, PeriodCount
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
from sidecar.storage import codec, scripts
from sidecar.storage.cluster import ClusterConnections
from sidecar.storage.connections import Client, Pipelined, RedisConnections
from sidecar.storage.keys import REGISTRY, WorkspaceKeys
from sidecar.storage.multiplex import BusyError, MultiplexedConnection
from sidecar.storage.scripts import Script

# Redis saying "not now": the connection, a timeout, a failover, a reshard (MOVED and ASK
# that could not be followed), writes refused for memory (OOM), a long script (BUSY), fewer
# replicas than asked (WAIT). A retry can outlive each; none is the caller's fault.
_TRANSIENT = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ReadOnlyError,
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.ClusterError,
    rex.MasterDownError,
    rex.AskError,  # and MovedError, its subclass
    rex.OutOfMemoryError,
    rex.SlotNotCoveredError,
    BusyError,
)
_CACHE_MAX = 100_000
# Reads that wait on purpose (XREAD BLOCK): a round trip, but not a latency.
_WAITING = frozenset({"read_events"})


class RedisStore:
    """Implements every storage port on one Redis.

    Decisions, merges and exemptions go over the pipelined connection; operator reads over
    the pool; event reads, which wait, over the blocking pool.
    """

    def __init__(
        self, connections: RedisConnections, *, wait_replicas: int = 0, wait_timeout_ms: int = 0
    ) -> None:
        self._pool = connections.pool
        self._blocking = connections.blocking
        self._pipelined = connections.pipelined
        self._cluster = connections.cluster
        self._wait = (wait_replicas, wait_timeout_ms)
        self._registered: set[str] = set()
        self._timed: dict[str, tuple[Any, Any]] = {}
        self._decide_keys: dict[tuple[str, str], tuple[str, ...]] = {}

    async def load_scripts(self) -> None:
        """Register every script with Redis, so the first calls find them."""
        for script in scripts.ALL:  # on every master
            await self._on_pipelined_each("script_load", "SCRIPT", "LOAD", script.source)

    async def ping(self) -> None:
        """Raise ``StorageError`` unless Redis answers on both the pipelined connection and
        the pool."""
        await self._on_pipelined_each("ping", "PING")
        await self._on_pool("ping", "PING")
        try:  # answering is not enough: decisions write
            await self._timed_call("probe_writes", self._pipelined.probe_writes())
        except rex.RedisError as exc:
            raise wrap_error(exc) from exc

    async def _send(
        self, operation: str, connection: Pipelined | Client, command: Sequence[Any]
    ) -> Any:
        """Send one command on ``connection``, timed and counted under ``operation``; Redis
        errors pass through unwrapped."""
        if isinstance(connection, MultiplexedConnection | ClusterConnections):
            return await self._timed_call(operation, connection.execute(*command))
        # redis-py's typed helpers are declared for sync and async clients at once;
        # execute_command keeps one plain, awaited path.
        sent = connection.execute_command(*command)  # type: ignore[no-untyped-call,unused-ignore]
        return await self._timed_call(operation, sent)

    async def _timed_call(self, operation: str, sent: Awaitable[Any]) -> Any:
        """Await what was sent to Redis, timed and counted under ``operation``; Redis errors
        pass through unwrapped."""
        timed = self._timed.get(operation)
        if timed is None:
            timed = self._timed[operation] = (
                metrics.REDIS_ROUND_TRIPS.labels(operation),
                None if operation in _WAITING else metrics.REDIS_SECONDS.labels(operation),
            )
        started = time.perf_counter()
        try:
            return await sent
        except rex.NoScriptError:
            raise
        except rex.RedisError as exc:
            kind = "transient" if isinstance(exc, _TRANSIENT) else "permanent"
            metrics.REDIS_ERRORS.labels(operation, kind).inc()
            raise
        finally:
            timed[0].inc()
            if timed[1] is not None:
                timed[1].observe(time.perf_counter() - started)

    async def _on_pipelined(self, operation: str, *command: Any) -> Any:
        try:
            return await self._send(operation, self._pipelined, command)
        except rex.RedisError as exc:
            raise wrap_error(exc) from exc

    async def _on_pipelined_each(self, operation: str, *command: Any) -> list[Any]:
        """``command`` on every master's pipelined connection."""
        try:
            replies: list[Any] = await self._timed_call(
                operation, self._pipelined.execute_each(*command)
            )
        except rex.RedisError as exc:
            raise wrap_error(exc) from exc
        return replies

    async def _on_pool(self, operation: str, *command: Any, client: Client | None = None) -> Any:
        try:
            return await self._send(operation, client or self._pool, command)
        except rex.RedisError as exc:
            raise wrap_error(exc) from exc

    async def _script(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], durable: bool = False
    ) -> Any:
        """``EVALSHA`` on the pipelined connection; on ``NOSCRIPT`` load it again, once.

        :param durable: with ``MAC_REDIS_WAIT_REPLICAS``, a reply that admitted a contact is
            returned only once that many replicas have it.
        """
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        pipelined = self._pipelined
        replicas, timeout_ms = self._wait

        def sent() -> Awaitable[Any]:
            if durable and replicas:
                return pipelined.execute_durably(command, replicas, timeout_ms, _admitted)
            return pipelined.execute(*command)

        try:
            try:
                return await self._timed_call(script.name, sent())
            except rex.NoScriptError:
                # Redis restarted or SCRIPT FLUSH ran
                metrics.SCRIPT_RELOADS.labels(script.name).inc()
                reload = pipelined.execute_each("SCRIPT", "LOAD", script.source)
                await self._timed_call("script_load", reload)
                return await self._timed_call(script.name, sent())
        except rex.ResponseError as exc:
            raise wrap_error(exc, script.explain(str(exc))) from exc
        except rex.RedisError as exc:
            raise wrap_error(exc) from exc

    async def _register(self, workspace_id: str) -> None:
        # Before a workspace's first decision in this process, so that WatchEvents for all
        # workspaces knows its stream before any event can be in it. Idempotent.
        if workspace_id not in self._registered:
            await self._on_pipelined("register", "SADD", REGISTRY, workspace_id)
            if len(self._registered) > _CACHE_MAX:
                self._registered.clear()
            self._registered.add(workspace_id)

    def _decide_script_keys(self, workspace_id: str, period_key: str) -> tuple[str, ...]:
        found = self._decide_keys.get((workspace_id, period_key))
        if found is None:
            if len(self._decide_keys) > _CACHE_MAX:
                self._decide_keys.clear()
            keys = WorkspaceKeys(workspace_id)
            found = self._decide_keys[(workspace_id, period_key)] = (
                keys.members(period_key),
                keys.counts,
                keys.subscription,
                keys.trial,
                keys.flags(period_key),
                keys.events,
                keys.links,
                keys.exempt,
                keys.usage(period_key),
            )
        return found

    async def decide(self, request: DecideRequest) -> DecideReply:
        """Run ``decide.lua`` (see ``DecisionStore.decide``)."""
        if not request.dry_run:
            await self._register(request.workspace_id)
        try:
            reply = await self._script(
                scripts.DECIDE,
                self._decide_script_keys(request.workspace_id, request.period.key),
                codec.decide_args(request),
                durable=not request.dry_run,
            )
        except StorageError as exc:
            if not request.dry_run and "TimeoutError" in str(exc):
                # it may still run in Redis: the contacts may be counted after all
                metrics.DECISIONS_UNKNOWN.inc()
            raise
        written = codec.events_written(reply)
        if written:
            metrics.EVENTS_RECORDED.inc(written)
        return codec.decide_reply(reply)

    async def period_basis(self, workspace_id: str) -> SubscriptionBasis:
        """The subscription's time zone, start, version and default phone region."""
        reply = await self._on_pool(
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
        reply = await self._script(
            scripts.MERGE,
            (keys.members(request.period_key), keys.counts, keys.links),
            (
                request.period_key,
                request.expire_at_ms,
                *codec.encode_contacts([request.target, *request.sources]),
            ),
        )
        return codec.merge_reply(reply)

    async def set_exempt(self, request: ExemptRequest) -> ExemptReply:
        """Run ``set_exempt.lua``."""
        keys = WorkspaceKeys(request.workspace_id)
        reply = await self._script(
            scripts.SET_EXEMPT,
            (keys.exempt, keys.links),
            (1 if request.exempt else 0, *codec.encode_contacts(request.contacts)),
        )
        return codec.exempt_reply(reply)

    async def set_subscription(
        self, resolved: Resolved, updated_at: datetime, expected_version: int
    ) -> int | None:
        """Run ``set_subscription.lua``; return the new version (``None``: it had changed)."""
        keys = WorkspaceKeys(resolved.subscription.workspace_id)
        version = int(
            await self._script(
                scripts.SET_SUBSCRIPTION,
                (keys.subscription,),
                (expected_version, *codec.subscription_args(resolved, updated_at)),
            )
        )
        return None if version < 0 else version

    async def subscription(self, workspace_id: str) -> StoredSubscription:
        """The subscription hash and the running or last trial's end."""
        keys = WorkspaceKeys(workspace_id)
        raw = await self._on_pool("subscription", "HGETALL", keys.subscription)
        until = await self._on_pool("subscription", "HGET", keys.trial, "until")
        resolved = codec.subscription(workspace_id, codec.decode_hash(raw))
        return StoredSubscription(resolved, int(until or 0))

    async def breakdown(self, workspace_id: str, period_key: str) -> dict[str, int]:
        """A period's usage hash: ``ch:<channel>`` and ``d:<date>`` counts."""
        raw = await self._on_pool("usage", "HGETALL", WorkspaceKeys(workspace_id).usage(period_key))
        return {k: int(v) for k, v in codec.decode_hash(raw).items()}

    async def history(self, workspace_id: str) -> list[PeriodCount]:
        """The counts hash as one count per period."""
        raw = await self._on_pool("counts", "HGETALL", WorkspaceKeys(workspace_id).counts)
        return codec.history(codec.decode_hash(raw))

    async def scan_members(
        self, workspace_id: str, period_key: str, cursor: int, count: int
    ) -> MemberPage:
        """One ``SSCAN`` step over a period's members, and the set's size."""
        members = WorkspaceKeys(workspace_id).members(period_key)
        next_cursor, found = await self._on_pool(
            "list_contacts", "SSCAN", members, cursor, "COUNT", count
        )
        total = await self._on_pool("list_contacts", "SCARD", members)
        return MemberPage(int(next_cursor), list(found), int(total))

    async def workspaces(self) -> list[str]:
        """Every workspace that may have events."""
        found = await self._on_pool("workspaces", "SMEMBERS", REGISTRY)
        return sorted(m.decode() for m in found)

    async def read_events(
        self, cursors: dict[str, str], block_ms: int, count: int = 100
    ) -> list[Event]:
        """Events after each workspace's cursor (``XREAD``), waiting up to ``block_ms``."""
        streams = {WorkspaceKeys(ws).events: cursor for ws, cursor in cursors.items()}
        if self._cluster:
            return await self._read_events_apart(streams, block_ms, count)
        reply = await self._on_pool(
            "read_events",
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            block_ms,
            "STREAMS",
            *streams,
            *streams.values(),
            client=self._blocking,
        )
        return [
            codec.event(entry_id, raw)
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
        reply = await self._on_pool(
            "read_recorded_events", "XREAD", "COUNT", count, "STREAMS", *streams, *streams.values()
        )
        return [
            codec.event(entry_id, raw)
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
            async with self._blocking.pipeline() as pipe:
                for stream, cursor in streams.items():
                    pipe.xread({stream: cursor}, count=count)
                try:
                    replies = await self._timed_call("read_events", pipe.execute())
                except rex.RedisError as exc:
                    raise wrap_error(exc) from exc
            found = [
                codec.event(entry_id, raw)
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


def wrap_error(exc: rex.RedisError, message: str | None = None) -> StorageError:
    """A redis-py error as the ``StorageError`` the use cases see, transient when retrying
    later can succeed."""
    text = message if message is not None else str(exc)
    return StorageError(
        f"redis: {type(exc).__name__}: {text}", transient=isinstance(exc, _TRANSIENT)
    )


def _event_order(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)

"""Redis storage: the Lua scripts, called by SHA, and the wrapping of every Redis failure."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from redis import exceptions as rex
from redis.asyncio import Redis

from sidecar import metrics
from sidecar.domain.decision import Counted, Event, Merged, Policy, Reason
from sidecar.domain.errors import StaleSubscription, StorageError
from sidecar.storage.keys import REGISTRY, WorkspaceKeys
from sidecar.storage.multiplex import MultiplexedConnection

# The codes decide.lua returns, and what they mean.
_CODES = {
    0: Reason.ALREADY_ACTIVE,
    1: Reason.ADMITTED,
    2: Reason.LIMIT_REACHED,
    3: Reason.WITHIN_LIMIT,
    4: Reason.TRIAL_STARTED,
    5: Reason.LIMIT_REACHED,  # over the limit, allowed by shadow mode
    6: Reason.EXEMPT,
}
SHADOW_CODE = 5

# Failures that a retry can outlive: the connection, a timeout, a failover or a reshard.
_TRANSIENT = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.BusyLoadingError,
    rex.ReadOnlyError,
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.MasterDownError,
)


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script shipped in ``sidecar/scripts``, addressed by its SHA1."""

    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str, *libraries: str) -> Script:
        """Read ``scripts/<name>.lua`` from the package, after ``scripts/lib/<library>.lua``."""
        scripts = resources.files("sidecar.storage") / "lua"
        parts = [(scripts / "lib" / f"{lib}.lua").read_text() for lib in libraries]
        source = "\n".join([*parts, (scripts / f"{name}.lua").read_text()])
        return cls(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


def encode_contacts(contacts: Sequence[tuple[Sequence[bytes], bytes]]) -> list[Any]:
    """Contacts as the scripts read them: n, n primary keys, the visitor key or ''."""
    out: list[Any] = []
    for primaries, visitor in contacts:
        out.append(len(primaries))
        out.extend(primaries)
        out.append(visitor)
    return out


class RedisStore:
    """The service's state in Redis. Every state change is one script call.

    :param client: a ``redis.asyncio`` client (``decode_responses`` off: keys are bytes).
    :param on_reload: called with the script name whenever Redis had lost a script.
    :param blocking: a client whose reads may wait for ``XREAD BLOCK`` (default ``client``).
    :param hot: a pipelined connection for the decision path (default ``client``).
    """

    DECIDE = Script.load("decide", "identity")
    MERGE = Script.load("merge", "identity")
    SET_EXEMPT = Script.load("set_exempt", "identity")
    SET_SUBSCRIPTION = Script.load("set_subscription")
    SCRIPTS = (DECIDE, MERGE, SET_EXEMPT, SET_SUBSCRIPTION)

    def __init__(
        self,
        client: Redis,
        on_reload: Any = None,
        blocking: Redis | None = None,
        hot: MultiplexedConnection | None = None,
    ) -> None:
        self._client = client
        self._on_reload = on_reload
        self._blocking = blocking or client
        self._hot = hot
        self._registered: set[str] = set()
        self._timed: dict[str, tuple[Any, Any]] = {}
        self._decide_keys: dict[tuple[str, str], tuple[str, ...]] = {}

    async def load_scripts(self) -> None:
        """Register every script with Redis, so the first calls find them."""
        for script in self.SCRIPTS:
            await self._call("SCRIPT", "LOAD", script.source, operation="script_load")

    async def ping(self) -> None:
        """Raise ``StorageError`` unless Redis answers on both the decision path's connection
        and the pool the other calls use."""
        try:
            await self._io("ping", None, ("PING",))
        except rex.RedisError as exc:
            raise _wrap(exc) from exc
        await self._call("PING", operation="ping")

    async def _io(self, operation: str, client: Redis | None, command: tuple[Any, ...]) -> Any:
        timed = self._timed.get(operation)
        if timed is None:
            timed = self._timed[operation] = (
                metrics.REDIS_ROUND_TRIPS.labels(operation),
                metrics.REDIS_SECONDS.labels(operation),
            )
        started = time.perf_counter()
        try:
            if client is None and self._hot is not None:
                return await self._hot.execute(*command)
            # redis-py's typed helpers are declared for sync and async clients at once;
            # execute_command keeps one plain, awaited path.
            return await (client or self._client).execute_command(*command)  # type: ignore[no-untyped-call]
        except rex.NoScriptError:
            raise
        except rex.RedisError as exc:
            kind = "transient" if isinstance(exc, _TRANSIENT) else "permanent"
            metrics.REDIS_ERRORS.labels(operation, kind).inc()
            raise
        finally:
            timed[0].inc()
            timed[1].observe(time.perf_counter() - started)

    async def _call(self, *command: Any, operation: str, client: Redis | None = None) -> Any:
        try:
            return await self._io(operation, client or self._client, command)
        except rex.RedisError as exc:
            raise _wrap(exc) from exc

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        try:
            try:
                return await self._io(script.name, None, command)
            except rex.NoScriptError:
                # Redis restarted or SCRIPT FLUSH ran: load it again, once, and retry.
                if self._on_reload is not None:
                    self._on_reload(script.name)
                await self._io("script_load", None, ("SCRIPT", "LOAD", script.source))
                return await self._io(script.name, None, command)
        except rex.RedisError as exc:
            raise _wrap(exc) from exc

    async def _register(self, workspace_id: str) -> None:
        # Before a workspace's first decision in this process, so that WatchEvents for all
        # workspaces knows its stream before any event can be in it. Idempotent.
        if workspace_id not in self._registered:
            try:
                await self._io("register", None, ("SADD", REGISTRY, workspace_id))
            except rex.RedisError as exc:
                raise _wrap(exc) from exc
            if len(self._registered) > 100_000:
                self._registered.clear()
            self._registered.add(workspace_id)

    async def decide(
        self,
        keys: WorkspaceKeys,
        period_key: str,
        period_name: str,
        now_ms: int,
        expire_at_ms: int,
        policy: Policy,
        contacts: Sequence[tuple[Sequence[bytes], bytes]],
        *,
        subscription_version: str = "",
        dry_run: bool = False,
    ) -> Counted:
        """Resolve ``contacts`` (primary keys in precedence order, visitor key or ``b""``) to
        identities and decide them in order; admit and count them unless ``dry_run``.

        :param expire_at_ms: when the period's member set expires (unix ms).
        :param subscription_version: the subscription the period was computed from.
        :raise StaleSubscription: the subscription changed; compute the period again.
        :return: the count after the last contact, the limit, one reason per contact.
        """
        if not dry_run:
            await self._register(keys.workspace_id)
        script_keys = self._decide_keys.get((keys.workspace_id, period_key))
        if script_keys is None:
            if len(self._decide_keys) > 100_000:
                self._decide_keys.clear()
            script_keys = self._decide_keys[(keys.workspace_id, period_key)] = (
                keys.members(period_key),
                keys.counts,
                keys.subscription,
                keys.trial,
                keys.flags(period_key),
                keys.events,
                keys.links,
                keys.exempt,
            )
        reply = cast(
            list[Any],
            await self._run(
                self.DECIDE,
                script_keys,
                (
                    period_key,
                    period_name,
                    now_ms,
                    expire_at_ms,
                    1 if dry_run else 0,
                    policy.limit,
                    policy.plan,
                    policy.trial_plan,
                    policy.trial_limit,
                    policy.trial_days,
                    policy.thresholds,
                    policy.events_max,
                    keys.workspace_id,
                    subscription_version,
                    *encode_contacts(contacts),
                ),
            ),
        )
        if reply[0] == -1:
            raise StaleSubscription(reply[1].decode(), int(reply[2]), reply[3].decode())
        if reply[4]:
            metrics.EVENTS_RECORDED.inc(reply[4])
        per_contact = reply[5:]
        codes = per_contact[0::3]
        flags = per_contact[2::3]
        return Counted(
            active=reply[0],
            limit=reply[1],
            reasons=[_CODES[code] for code in codes],
            trial_until_ms=reply[2],
            plan=reply[3].decode(),
            shadowed=[code == SHADOW_CODE for code in codes],
            identities=list(per_contact[1::3]),
            conflicts=[bool(f & 1) for f in flags],
            visitors_merged=[bool(f & 2) for f in flags],
        )

    async def merge(
        self,
        keys: WorkspaceKeys,
        period_key: str,
        expire_at_ms: int,
        target: tuple[Sequence[bytes], bytes],
        sources: Sequence[tuple[Sequence[bytes], bytes]],
    ) -> Merged:
        """Fold the sources' identities into the target's (see ``merge.lua``)."""
        reply = await self._run(
            self.MERGE,
            (keys.members(period_key), keys.counts, keys.links),
            (period_key, expire_at_ms, *encode_contacts([target, *sources])),
        )
        return Merged(reply[0], int(reply[1]), int(reply[2]), int(reply[3]))

    async def set_exempt(
        self, keys: WorkspaceKeys, contacts: Sequence[tuple[Sequence[bytes], bytes]], exempt: bool
    ) -> tuple[int, list[bytes]]:
        """Mark contacts exempt or countable; return how many keys changed, and the identities."""
        reply = await self._run(
            self.SET_EXEMPT,
            (keys.exempt, keys.links),
            (1 if exempt else 0, *encode_contacts(contacts)),
        )
        return int(reply[0]), list(reply[1:])

    async def set_subscription(self, keys: WorkspaceKeys, fields: dict[str, str | int]) -> int:
        """Replace the subscription hash; return its new version."""
        args = [x for pair in fields.items() for x in pair]
        version: int = await self._run(self.SET_SUBSCRIPTION, (keys.subscription,), args)
        return version

    async def subscription(self, keys: WorkspaceKeys) -> tuple[dict[str, str], int]:
        """The subscription hash (empty when none was set) and the running trial's end (ms)."""
        raw = await self._call("HGETALL", keys.subscription, operation="subscription")
        until = await self._call("HGET", keys.trial, "until", operation="subscription")
        return _decode_hash(raw), int(until or 0)

    async def counts(self, keys: WorkspaceKeys) -> dict[str, str]:
        """The history hash: ``period_key -> active`` and ``period_key:limit -> limit``."""
        return _decode_hash(await self._call("HGETALL", keys.counts, operation="counts"))

    async def scan_members(
        self, keys: WorkspaceKeys, period_key: str, cursor: int, count: int
    ) -> tuple[int, list[bytes], int]:
        """One SSCAN step over a period's members: next cursor, keys, and the set's size."""
        members = keys.members(period_key)
        next_cursor, found = await self._call(
            "SSCAN", members, cursor, "COUNT", count, operation="list_contacts"
        )
        total = await self._call("SCARD", members, operation="list_contacts")
        return int(next_cursor), list(found), int(total)

    async def workspaces(self) -> list[str]:
        """Every workspace that may have events."""
        found = await self._call("SMEMBERS", REGISTRY, operation="workspaces")
        return sorted(m.decode() for m in found)

    async def read_events(
        self, cursors: dict[str, str], block_ms: int, count: int = 100
    ) -> list[Event]:
        """Events after each workspace's cursor (``XREAD``), waiting up to ``block_ms``."""
        streams = {WorkspaceKeys(ws).events: cursor for ws, cursor in cursors.items()}
        reply = await self._call(
            "XREAD",
            "COUNT",
            count,
            "BLOCK",
            block_ms,
            "STREAMS",
            *streams,
            *streams.values(),
            operation="read_events",
            client=self._blocking,
        )
        events: list[Event] = []
        for _stream, entries in reply or []:
            for entry_id, raw in entries:
                fields = _decode_hash(raw)
                events.append(
                    Event(
                        id=entry_id.decode(),
                        workspace_id=fields["workspace"],
                        type=fields["type"],
                        period=fields["period"],
                        threshold_percent=int(fields["threshold"]),
                        active=int(fields["active"]),
                        limit=int(fields["limit"]),
                        at_ms=int(fields["at"]),
                    )
                )
        return events


def _decode_hash(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {k.decode(): v.decode() for k, v in raw.items()}
    items = list(raw or [])
    return {items[i].decode(): items[i + 1].decode() for i in range(0, len(items), 2)}


def _wrap(exc: rex.RedisError) -> StorageError:
    return StorageError(
        f"redis: {type(exc).__name__}: {exc}", transient=isinstance(exc, _TRANSIENT)
    )

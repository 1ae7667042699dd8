"""Forgetting a person and bounding the links in Redis: ``forget.lua`` erases a person in one
step, ``index_backfill.lua`` files links written before the identity index existed,
``links_expire.lua`` drops the links of identities not counted for a while, and the node that
holds a workspace is asked to rewrite its append-only file after a Forget.

Every script touches the keys of one workspace (one slot); the scans page with HSCAN over
one workspace's hash at a time.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from redis import exceptions as rex

from sidecar.domain.errors import StorageError
from sidecar.domain.forget_ports import ForgetRequest, Forgotten
from sidecar.domain.statement import is_count_key
from sidecar.storage import calls, codec, scripts
from sidecar.storage.calls import Pooled
from sidecar.storage.connections import Client
from sidecar.storage.keys import WorkspaceKeys

# The links hash's field saying every link of the workspace is in its identity index
# (index_backfill.lua ran over all of it). Two bytes: no identifier key (14 bytes) is it.
INDEXED = "~i"
# Fields read and filed (or expired) per script call.
PAGE = 500


class RedisForgetting:
    """Implements ``ForgetStore`` and ``LinkExpiryStore`` on a redis-py client (the operator
    pool).

    :param cluster: the client is a cluster client (the AOF rewrite goes to the node of the
        workspace's slot).
    """

    def __init__(
        self,
        client: Client,
        *,
        cluster: bool = False,
        page: int = PAGE,
        audit_retention_days: int = 400,
    ) -> None:
        self._audit_retention_ms = audit_retention_days * 86_400_000
        self._connection = Pooled(client)
        self._client = client
        self._cluster = cluster
        self._page = page

    async def counted_periods(self, workspace_id: str) -> list[str]:
        """``HKEYS counts``: the periods with a count."""
        fields = await calls.command(
            self._connection, "forget_periods", "HKEYS", WorkspaceKeys(workspace_id).counts
        )
        return [f.decode() for f in fields if is_count_key(f.decode())]

    async def indexed(self, workspace_id: str) -> bool:
        """Whether the links hash carries ``INDEXED``."""
        found = await calls.command(
            self._connection, "index_check", "HEXISTS", WorkspaceKeys(workspace_id).links, INDEXED
        )
        return bool(found)

    async def backfill(
        self, workspace_id: str, ordinal: int, renew: Callable[[], Awaitable[bool]] | None = None
    ) -> bool:
        """HSCAN the links hash, filing each page with ``index_backfill.lua``; mark it
        ``INDEXED`` at the end. A link made meanwhile is filed by the script that made it."""
        keys = WorkspaceKeys(workspace_id)
        cursor = 0
        while True:
            if renew is not None and not await renew():
                return False
            cursor, fields = await self._scan(keys.links, cursor)
            if fields:
                await calls.script(
                    self._connection,
                    scripts.INDEX_BACKFILL,
                    (keys.links, keys.identities),
                    (ordinal, *fields),
                )
            if cursor == 0:
                break
        await calls.command(self._connection, "index_mark", "HSET", keys.links, INDEXED, 1)
        return True

    async def forget(self, request: ForgetRequest) -> Forgotten:
        """Run ``forget.lua`` with a fresh random seed for the anonymous members."""
        keys = WorkspaceKeys(request.workspace_id)
        period_keys: list[str] = []
        for period_key in request.period_keys:
            period_keys += (keys.members(period_key), keys.flags(period_key))
        reply = await calls.script(
            self._connection,
            scripts.FORGET,
            (keys.links, keys.identities, keys.exempt, keys.audit, *period_keys),
            forget_args(request, secrets.token_bytes(16), self._audit_retention_ms),
        )
        return forget_reply(reply)

    async def expire_links(
        self, workspace_id: str, cutoff: int, renew: Callable[[], Awaitable[bool]] | None = None
    ) -> int:
        """HSCAN the identity index, expiring each page with ``links_expire.lua``."""
        keys = WorkspaceKeys(workspace_id)
        cursor, expired = 0, 0
        while True:
            if renew is not None and not await renew():
                break
            cursor, fields = await self._scan(keys.identities, cursor)
            if fields:
                reply = await calls.script(
                    self._connection,
                    scripts.LINKS_EXPIRE,
                    (keys.links, keys.identities, keys.exempt),
                    (cutoff, *fields),
                )
                expired += int(dict(zip(codec.LINKS_EXPIRE_REPLY, reply, strict=True))["expired"])
            if cursor == 0:
                break
        return expired

    async def rewrite_history(self, workspace_id: str) -> str:
        """``BGREWRITEAOF`` on the node holding the workspace, when it has the AOF on."""
        target: dict[str, Any] = {}
        if self._cluster:
            node = self._client.get_node_from_key(WorkspaceKeys(workspace_id).links)  # type: ignore[union-attr]
            target = {"target_nodes": node}
        try:
            info = await self._client.execute_command("INFO", "persistence", **target)  # type: ignore[no-untyped-call,unused-ignore]
            if not int(_info_field(info, "aof_enabled") or 0):
                return "off"
            await self._client.execute_command("BGREWRITEAOF", **target)  # type: ignore[no-untyped-call,unused-ignore]
        except rex.ResponseError as exc:
            # refused (renamed or disabled on a managed Redis), or a rewrite already running
            # from before the Forget: its file may still hold the keys
            return f"refused: {exc}"
        except rex.RedisError as exc:
            raise StorageError(f"redis: {type(exc).__name__}: {exc}", transient=True) from exc
        return "started"

    async def _scan(self, key: str, cursor: int) -> tuple[int, list[bytes]]:
        next_cursor, found = await calls.command(
            self._connection, "index_scan", "HSCAN", key, cursor, "COUNT", self._page
        )
        fields = found[::2] if isinstance(found, list) else list(found)
        return int(next_cursor), fields


def _info_field(info: Any, name: str) -> Any:
    """A field of an ``INFO`` reply (redis-py parses it into a dict; a cluster client may
    answer a dict of nodes)."""
    if isinstance(info, dict) and name not in info and len(info) == 1:
        info = next(iter(info.values()))
    return info.get(name) if isinstance(info, dict) else None


def forget_args(request: ForgetRequest, seed: bytes, retention_ms: int) -> list[Any]:
    """``forget.lua``'s ARGV: ``codec.FORGET_ARGV`` in order, then the contact."""
    return [
        seed,
        *codec.audit_args(request.audit, retention_ms),
        *codec.encode_contacts([request.contact]),
    ]


def forget_reply(reply: list[Any]) -> Forgotten:
    """A ``forget.lua`` reply (``codec.FORGET_REPLY``)."""
    got = dict(zip(codec.FORGET_REPLY, reply, strict=True))
    return Forgotten(
        bool(int(got["forgotten"])), int(got["identifiers_removed"]), int(got["periods"])
    )

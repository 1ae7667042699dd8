"""Redis storage: the Lua scripts, called by SHA, and the wrapping of every Redis failure."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

from redis import exceptions as rex
from redis.asyncio import Redis

from mac_sidecar.decision import Counted, Reason
from mac_sidecar.errors import StorageError
from mac_sidecar.keys import WorkspaceKeys

# The codes the scripts return, and what they mean.
_CODES = {
    0: Reason.ALREADY_ACTIVE,
    1: Reason.ADMITTED,
    2: Reason.LIMIT_REACHED,
    3: Reason.WITHIN_LIMIT,
}

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
    """A Lua script shipped in ``mac_sidecar/scripts``, addressed by its SHA1."""

    name: str
    source: str
    sha: str

    @classmethod
    def load(cls, name: str) -> Script:
        """Read ``scripts/<name>.lua`` from the package."""
        source = (resources.files("mac_sidecar") / "scripts" / f"{name}.lua").read_text()
        return cls(name, source, hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest())


class RedisStore:
    """The service's state in Redis. Every state change is one script call.

    :param client: a ``redis.asyncio`` client (``decode_responses`` off: keys are bytes).
    :param on_reload: called with the script name whenever Redis had lost a script.
    """

    ACTIVATE = Script.load("activate")
    CHECK = Script.load("check")
    SCRIPTS = (ACTIVATE, CHECK)

    def __init__(self, client: Redis, on_reload: Any = None) -> None:
        self._client = client
        self._on_reload = on_reload

    async def load_scripts(self) -> None:
        """Register every script with Redis, so the first calls find them."""
        try:
            for script in self.SCRIPTS:
                await self._client.script_load(script.source)
        except rex.RedisError as exc:
            raise _wrap(exc) from exc

    async def ping(self) -> None:
        """Raise ``StorageError`` unless Redis answers."""
        try:
            await self._client.ping()
        except rex.RedisError as exc:
            raise _wrap(exc) from exc

    async def _run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            try:
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)
            except rex.NoScriptError:
                # Redis restarted or SCRIPT FLUSH ran: load it again, once, and retry.
                if self._on_reload is not None:
                    self._on_reload(script.name)
                await self._client.script_load(script.source)
                return await self._client.evalsha(script.sha, len(keys), *keys, *args)
        except rex.RedisError as exc:
            raise _wrap(exc) from exc

    async def activate(
        self,
        keys: WorkspaceKeys,
        period_key: str,
        limit: int,
        expire_at_ms: int,
        contacts: Sequence[bytes],
    ) -> Counted:
        """Admit, in order, each contact not yet counted in the period while below ``limit``.

        :param expire_at_ms: when the period's member set expires (unix ms).
        :return: the count after the last contact, and one reason per contact.
        """
        reply = cast(
            list[int],
            await self._run(
                self.ACTIVATE,
                (keys.members(period_key), keys.counts),
                (period_key, limit, expire_at_ms, *contacts),
            ),
        )
        return Counted(reply[0], reply[1], [_CODES[code] for code in reply[2:]])

    async def check(
        self, keys: WorkspaceKeys, period_key: str, limit: int, contact: bytes
    ) -> Counted:
        """What ``activate`` would answer for one contact; writes nothing."""
        reply = cast(
            list[int],
            await self._run(self.CHECK, (keys.members(period_key),), (limit, contact)),
        )
        return Counted(reply[0], reply[1], [_CODES[reply[2]]])


def _wrap(exc: rex.RedisError) -> StorageError:
    return StorageError(
        f"redis: {type(exc).__name__}: {exc}", transient=isinstance(exc, _TRANSIENT)
    )

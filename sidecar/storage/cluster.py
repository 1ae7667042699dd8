"""The decision path on a Redis Cluster: one pipelined connection per master, each command
routed by the CRC16 slot of its key.

Every key of a workspace carries its hash tag (``keys.py``), so a script call names one slot
and goes to the master that owns it, in one round trip as on a single Redis. A ``MOVED`` reply
(the slot has moved, or a replica was promoted) updates the slot and refreshes the whole map,
then sends the command again to the new owner; an ``ASK`` reply sends ``ASKING`` and the
command together to the node importing the slot. A lost node, ``CLUSTERDOWN`` or ``TRYAGAIN``
refreshes the map in the background and fails the call as transient: the next one goes to
whichever master owns the slot by then.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from redis import exceptions as rex
from redis.crc import key_slot

from sidecar.storage.multiplex import WRITE_PROBE, CannotConnect, MultiplexedConnection

SLOTS = 16384
# Redirections one command follows before it gives up (a slot moving twice meanwhile).
MAX_REDIRECTS = 3


def command_key(command: Sequence[Any]) -> Any | None:
    """The key a command is routed by: a script's first key, else its first argument; ``None``
    for a command without one (``PING``, ``SCRIPT LOAD``)."""
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return command[3] if int(command[2]) > 0 else None
    if name in ("PING", "SCRIPT", "WAIT", "ASKING", "CLUSTER", "INFO"):
        return None
    return command[1] if len(command) > 1 else None


class ClusterConnections:
    """The pipelined connections to a cluster's masters, and the slot map routing to them.

    :param urls: seed nodes, ``redis://`` or ``rediss://``; their TLS options, user and
        password apply to every node.
    :param timeout: seconds a command may take, connecting included.
    """

    def __init__(
        self,
        urls: Sequence[str],
        timeout: float,
        *,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._template = urls[0]
        self._seeds = [_address(url) for url in urls]
        self._timeout = timeout
        self._username = username
        self._password = password
        self._slots: list[tuple[str, int] | None] = [None] * SLOTS
        self._nodes: dict[tuple[str, int], MultiplexedConnection] = {}
        self._masters: list[tuple[str, int]] = []
        self._refreshing: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    @property
    def masters(self) -> list[tuple[str, int]]:
        """The masters of the last slot map."""
        return list(self._masters)

    def _node(self, address: tuple[str, int]) -> MultiplexedConnection:
        found = self._nodes.get(address)
        if found is None:
            found = self._nodes[address] = MultiplexedConnection(
                _url_for(self._template, address),
                self._timeout,
                username=self._username,
                password=self._password,
            )
        return found

    async def refresh(self) -> None:
        """Read the slot map (``CLUSTER SLOTS``) from the first node that answers: known
        masters first, then the seeds.

        :raise CannotConnect: no node answered (nothing was sent).
        """
        async with self._lock:
            failure: Exception | None = None
            for address in dict.fromkeys([*self._masters, *self._seeds]):
                try:
                    reply = await self._node(address).execute("CLUSTER", "SLOTS")
                except rex.RedisError as exc:
                    failure = exc
                    continue
                self._load(reply, address[0])
                return
            raise CannotConnect(f"no cluster node answered CLUSTER SLOTS: {failure}")

    def _load(self, reply: list[Any], default_host: str) -> None:
        slots: list[tuple[str, int] | None] = [None] * SLOTS
        masters: dict[tuple[str, int], None] = {}
        for start, end, master, *_replicas in reply:
            host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
            address = (host or default_host, int(master[1]))
            masters[address] = None
            for slot in range(int(start), int(end) + 1):
                slots[slot] = address
        self._slots = slots
        self._masters = list(masters)
        for address in [a for a in self._nodes if a not in masters and a not in self._seeds]:
            self._nodes.pop(address).close()  # a node that is no longer a master

    def _refresh_soon(self) -> None:
        """Refresh the slot map in the background, once at a time."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._quiet_refresh())

    async def _quiet_refresh(self) -> None:
        with contextlib.suppress(rex.RedisError):
            await self.refresh()

    async def _owner(self, key: Any) -> tuple[str, int]:
        slot = key_slot(key if isinstance(key, bytes) else str(key).encode())
        address = self._slots[slot]
        if address is None:
            await self.refresh()
            address = self._slots[slot]
            if address is None:
                raise rex.ClusterDownError(f"slot {slot} is not served by any node")
        return address

    async def execute(self, *command: Any) -> Any:
        """Send one command to the master of its key's slot (every master for ``PING`` and
        ``SCRIPT``), following ``MOVED`` and ``ASK``."""
        key = command_key(command)
        if key is None:
            return (await self.execute_each(*command))[0]
        return await self._routed(key, lambda node: node.execute(*command), command)

    async def execute_many(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send commands of one slot (that of the first command's key) one right after the
        other on its master's connection, and return their replies."""
        key = command_key(commands[0])
        if key is None:
            raise ValueError("the first command names no key")
        replies: list[Any] = await self._routed(
            key, lambda node: node.execute_many(*commands), *commands
        )
        return replies

    async def execute_durably(
        self,
        command: tuple[Any, ...],
        replicas: int,
        timeout_ms: int,
        wrote: Callable[[Any], bool],
    ) -> Any:
        """``MultiplexedConnection.execute_durably`` on the master of the command's slot."""
        key = command_key(command)
        if key is None:
            raise ValueError("the command names no key")
        return await self._routed(
            key, lambda node: node.execute_durably(command, replicas, timeout_ms, wrote), command
        )

    async def probe_writes(self) -> None:
        """Raise when a master refuses writes (``OOM``, ``READONLY``); writes nothing."""
        await self.execute_each(*WRITE_PROBE)

    async def _routed(
        self,
        key: Any,
        send: Callable[[MultiplexedConnection], Awaitable[Any]],
        *commands: tuple[Any, ...],
    ) -> Any:
        address = await self._owner(key)
        for _ in range(MAX_REDIRECTS + 1):
            connection = self._node(address)
            try:
                return await send(connection)
            except rex.MovedError as moved:
                address = _redirect(moved, address)
                self._slots[moved.slot_id] = address
                self._refresh_soon()
            except rex.AskError as ask:
                # the slot is migrating: this once, the importing node answers for it
                target = self._node(_redirect(ask, address))
                replies = await target.execute_many(("ASKING",), *commands)
                return replies[1] if len(commands) == 1 else replies[1:]
            except (rex.ConnectionError, rex.TimeoutError, rex.ClusterDownError, rex.TryAgainError):
                self._refresh_soon()  # a master died or a failover is under way
                raise
        raise rex.ClusterError(f"too many redirections for one command ({MAX_REDIRECTS})")

    async def execute_each(self, *command: Any) -> list[Any]:
        """Send ``command`` to every master; their replies, in the map's order.

        :raise redis.exceptions.RedisError: the first master's failure.
        """
        if not self._masters:
            await self.refresh()
        try:
            return list(
                await asyncio.gather(*(self._node(a).execute(*command) for a in self._masters))
            )
        except (rex.ConnectionError, rex.TimeoutError, rex.ClusterDownError):
            self._refresh_soon()
            raise

    def close(self) -> None:
        """Close every connection."""
        if self._refreshing is not None:
            self._refreshing.cancel()
        for connection in self._nodes.values():
            connection.close()
        self._nodes.clear()


def _redirect(error: rex.AskError, current: tuple[str, int]) -> tuple[str, int]:
    """The node a ``MOVED``/``ASK`` reply names (its host, or the current one's when empty)."""
    return (error.host or current[0], int(error.port))


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return (parts.hostname or "localhost", parts.port or 6379)


def _url_for(template: str, address: tuple[str, int]) -> str:
    """``template`` (its scheme, credentials, TLS query) pointed at ``address``."""
    parts = urlsplit(template)
    credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return parts._replace(netloc=f"{credentials}{address[0]}:{address[1]}", path="").geturl()

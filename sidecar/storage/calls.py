"""Every command and script the storage adapters send to Redis goes through here: counted and
timed per operation, a script sent by its SHA1 and loaded again on ``NOSCRIPT``, and every
failure counted and wrapped as the ``StorageError`` the use cases see."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from redis import exceptions as rex

from sidecar import metrics
from sidecar.domain.errors import StorageError
from sidecar.storage.connections import Client
from sidecar.storage.multiplex import BusyError, NotSent
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
# A timeout or a lost connection after a command was sent leaves its outcome unknown: Redis
# may have run it. These connection errors say it never ran: nothing was sent (connecting
# failed, no pooled connection was free, authentication was refused) or Redis refused it
# (LOADING). redis-py's pools raise a plain ConnectionError whether connecting failed or the
# reply was lost, so a plain one counts as unknown; so does NotReplicated: the script ran on
# the master, and may be lost with it.
_NOT_RUN = (
    NotSent,
    rex.AuthenticationError,
    rex.AuthorizationError,
    rex.BusyLoadingError,
    rex.MaxConnectionsError,
)


class Connection(Protocol):
    """Where commands go: the pipelined connection(s) of the decision path, or a redis-py
    client as ``Pooled``."""

    def execute(self, *args: Any) -> Awaitable[Any]:
        """Send one command; its reply."""
        ...

    def execute_each(self, *args: Any) -> Awaitable[list[Any]]:
        """Send one command to every master; their replies."""
        ...


class Pooled:
    """A redis-py client (a pool, a Sentinel's master, a cluster) as a ``Connection``."""

    __slots__ = ("client",)

    def __init__(self, client: Client) -> None:
        self.client = client

    def execute(self, *args: Any) -> Awaitable[Any]:
        """Send one command on a pooled connection."""
        # redis-py's typed helpers are declared for sync and async clients at once;
        # execute_command keeps one plain, awaited path.
        sent: Awaitable[Any] = self.client.execute_command(*args)  # type: ignore[no-untyped-call,unused-ignore]
        return sent

    async def execute_each(self, *args: Any) -> list[Any]:
        """Send one command (a cluster client sends ``SCRIPT LOAD`` to every primary)."""
        return [await self.execute(*args)]


class _Operation:
    """An operation's metric children, labelled once: ``labels()`` on every call would cost a
    lock and a look-up each."""

    __slots__ = ("round_trips", "seconds")

    def __init__(self, name: str, waits: bool) -> None:
        self.round_trips = metrics.REDIS_ROUND_TRIPS.labels(name)
        self.seconds = None if waits else metrics.REDIS_SECONDS.labels(name)


_OPERATIONS: dict[str, _Operation] = {}


async def _timed(operation: str, sent: Awaitable[Any], waits: bool = False) -> Any:
    """Await what was sent, counted and timed under ``operation`` (only counted when it
    ``waits`` on purpose: an operation always waits or never); Redis errors pass through."""
    timer = _OPERATIONS.get(operation)
    if timer is None:
        timer = _OPERATIONS[operation] = _Operation(operation, waits)
    started = time.perf_counter()
    try:
        return await sent
    finally:
        timer.round_trips.inc()
        if timer.seconds is not None:
            timer.seconds.observe(time.perf_counter() - started)


def _failed(operation: str, exc: rex.RedisError, script: Script | None = None) -> StorageError:
    """``exc`` counted under ``operation`` and wrapped; a script's error located in its
    ``.lua`` file."""
    transient = isinstance(exc, _TRANSIENT)
    metrics.REDIS_ERRORS.labels(operation, "transient" if transient else "permanent").inc()
    text = script.explain(str(exc)) if script is not None else str(exc)
    return StorageError(
        f"redis: {type(exc).__name__}: {text}",
        transient=transient,
        outcome_unknown=(
            isinstance(exc, rex.ConnectionError | rex.TimeoutError)
            and not isinstance(exc, _NOT_RUN)
        ),
    )


async def send(operation: str, sent: Awaitable[Any], *, waits: bool = False) -> Any:
    """Await a command (or a pipeline) sent to Redis, counted and timed under ``operation``.

    :param waits: the command waits on purpose (``XREAD BLOCK``): a round trip, not a latency.
    :raise StorageError: Redis failed.
    """
    try:
        return await _timed(operation, sent, waits)
    except rex.RedisError as exc:
        raise _failed(operation, exc) from exc


async def command(connection: Connection, operation: str, *args: Any) -> Any:
    """Send one command on ``connection`` (see ``send``)."""
    return await send(operation, connection.execute(*args))


async def each(connection: Connection, operation: str, *args: Any) -> list[Any]:
    """Send one command to every master of ``connection``; their replies (see ``send``)."""
    replies: list[Any] = await send(operation, connection.execute_each(*args))
    return replies


async def load(connection: Connection, script: Script) -> None:
    """Register ``script`` on every master, so that the first ``EVALSHA`` finds it."""
    await each(connection, "script_load", "SCRIPT", "LOAD", script.source)


async def _reload(connection: Connection, script: Script) -> None:
    """Load ``script`` again after ``NOSCRIPT``; Redis errors pass through."""
    metrics.SCRIPT_RELOADS.labels(script.name).inc()
    await _timed("script_load", connection.execute_each("SCRIPT", "LOAD", script.source))


async def script(
    connection: Connection,
    script: Script,
    keys: Sequence[str],
    args: Sequence[Any],
    *,
    execute: Callable[..., Awaitable[Any]] | None = None,
) -> Any:
    """``EVALSHA`` of ``script``, counted and timed under its name; on ``NOSCRIPT`` (Redis
    restarted, or ``SCRIPT FLUSH`` ran) load it on every master and send it again, once.

    :param execute: sends the command instead of ``connection.execute`` (a durable write
        that waits for replicas).
    :raise StorageError: Redis failed; a script error names the ``.lua`` file and line.
    """
    command = ("EVALSHA", script.sha, len(keys), *keys, *args)
    run = execute or connection.execute
    try:
        try:
            return await _timed(script.name, run(*command))
        except rex.NoScriptError:
            await _reload(connection, script)
            return await _timed(script.name, run(*command))
    except rex.RedisError as exc:
        raise _failed(script.name, exc, script) from exc


async def script_batch(
    connection: Pooled, script: Script, each_call: Sequence[tuple[Sequence[str], Sequence[Any]]]
) -> list[Any]:
    """``EVALSHA`` of ``script`` with each ``(keys, args)`` of ``each_call``, sent together in
    one pipeline (one round trip on a single Redis), counted and timed as one; on
    ``NOSCRIPT`` in any, load it on every master and send them all again, once.

    :return: the replies, in order.
    :raise StorageError: the first call that failed, or the round trip.
    """

    async def send_all() -> list[Any]:
        async with connection.client.pipeline(transaction=False) as pipe:
            for keys, args in each_call:
                pipe.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    try:
        replies: list[Any] = await _timed(script.name, send_all())
        if any(isinstance(reply, rex.NoScriptError) for reply in replies):
            await _reload(connection, script)
            replies = await _timed(script.name, send_all())
    except rex.RedisError as exc:
        raise _failed(script.name, exc, script) from exc
    for reply in replies:
        if isinstance(reply, rex.RedisError):
            raise _failed(script.name, reply, script) from reply
    return replies

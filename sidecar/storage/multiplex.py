"""One Redis connection shared by every concurrent caller of the hot path, pipelined.

Redis answers commands in the order it received them, so one connection can carry any number
of callers at once: each caller queues its command with a future, and replies resolve the
futures in order. Commands queued in the same event-loop turn leave in one write, and one read
can resolve many callers. A call then costs a few microseconds of encoding (hiredis) and
parsing (hiredis) instead of a pooled connection checkout, a write and a read of its own.

A command that times out leaves the connection out of step (its reply may still come), so a
timeout closes the connection and fails every command on it; the next call reconnects.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import hiredis
from redis import exceptions as rex
from redis.asyncio.connection import SSLConnection, parse_url


class NotReplicated(rex.ConnectionError):
    """Fewer replicas than asked confirmed a write in time (``WAIT``): it is on the master, and
    may be lost with it. Transient: a retry finds the write there."""


class BusyError(rex.ResponseError):
    """Redis runs a script that takes too long (``BUSY``); it answers again when it ends."""


class NotSent(rex.RedisError):
    """Connecting failed, so the command was never sent: it did not run."""


class CannotConnect(NotSent, rex.ConnectionError):
    """No connection to Redis could be opened (refused, unreachable, no master known)."""


class ConnectTimeout(NotSent, rex.TimeoutError):
    """Opening the connection, or finding where to, took longer than the timeout."""


# A script that may write (it has no `no-writes` flag) and writes nothing: Redis refuses it,
# before running it, where it refuses writes (OOM under maxmemory, READONLY on a replica).
WRITE_PROBE = ("EVAL", "#!lua\nreturn 1", 0)


# The error codes a reply on this connection can start with, as redis-py's exceptions; any
# other error is a ResponseError. MOVED and ASK come from a Cluster node that does not own
# the slot.
_ERROR_CODES: dict[str, type[rex.RedisError]] = {
    "NOSCRIPT": rex.NoScriptError,
    "READONLY": rex.ReadOnlyError,
    "LOADING": rex.BusyLoadingError,
    "MASTERDOWN": rex.MasterDownError,
    "TRYAGAIN": rex.TryAgainError,
    "CLUSTERDOWN": rex.ClusterDownError,
    "MOVED": rex.MovedError,
    "ASK": rex.AskError,
    "CROSSSLOT": rex.ClusterCrossSlotError,
    "OOM": rex.OutOfMemoryError,
    "NOAUTH": rex.AuthenticationError,
    "WRONGPASS": rex.AuthenticationError,
    "NOPERM": rex.NoPermissionError,
    "BUSY": BusyError,
}


def reply_error(message: str) -> rex.RedisError:
    """The redis-py exception of an error reply (``NOSCRIPT No matching script...``)."""
    code, _, rest = message.partition(" ")
    kind = _ERROR_CODES.get(code)
    if kind is None:
        return rex.ResponseError(message)
    return kind(rest)


def _ssl_context(params: Mapping[str, Any]) -> ssl.SSLContext:
    """The TLS context the URL asks for (``ssl_ca_certs``, ``ssl_cert_reqs``, client cert)."""
    context = ssl.create_default_context(cafile=params.get("ssl_ca_certs"))
    if params.get("ssl_certfile"):
        context.load_cert_chain(params["ssl_certfile"], params.get("ssl_keyfile"))
    if str(params.get("ssl_cert_reqs", "required")).lower() in ("none", "cert_none"):
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif params.get("ssl_check_hostname") is False:
        context.check_hostname = False
    return context


class _Protocol(asyncio.Protocol):
    """Hands bytes and the end of the connection to its owner, while it is the current one."""

    def __init__(self, owner: MultiplexedConnection) -> None:
        self._owner = owner

    def data_received(self, data: bytes) -> None:
        if self._owner._protocol is self:  # a late callback of a closed connection is ignored
            self._owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._owner._protocol is self:
            self._owner._lost(exc)


class MultiplexedConnection:
    """A pipelined Redis connection for many concurrent callers.

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` or
        ``unix:///path``.
    :param timeout: seconds a command may take, connecting included.
    :param username: the user, when the URL names none.
    :param password: the password, when the URL has none.
    :param locate: where to connect, asked before every connect (the master a Sentinel
        names); the URL's host and port otherwise.
    """

    def __init__(
        self,
        url: str,
        timeout: float,
        *,
        username: str | None = None,
        password: str | None = None,
        locate: Callable[[], Awaitable[tuple[str, int]]] | None = None,
    ) -> None:
        params = parse_url(url)
        self._host: str = params.get("host", "localhost")
        self._port: int = int(params.get("port", 6379))
        self._path: str | None = params.get("path")
        self._db = int(params.get("db") or 0)
        self._username: str | None = params.get("username") or username or None
        self._password: str | None = params.get("password") or password or None
        self._locate = locate
        self._ssl = (
            _ssl_context(params) if params.get("connection_class") is SSLConnection else None
        )
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._protocol: _Protocol | None = None
        self._reader = hiredis.Reader()
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._lock = asyncio.Lock()
        self._ready = False
        self._failed_at = 0.0
        self._failure: rex.RedisError | None = None
        self._generation = 0  # connections opened so far

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply.

        :raise redis.exceptions.RedisError: the subclass redis-py would raise (``NoScriptError``,
            ``ConnectionError``, ``TimeoutError``, ...).
        """
        if not self._ready:
            await self._connect()
        return await self._send(args)

    async def execute_many(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Send ``commands`` one right after the other (nothing of another caller between
        them: ``ASKING`` and its command, a script and its ``WAIT``) and return their replies.

        :raise redis.exceptions.RedisError: the first command's error, if any failed.
        """
        if not self._ready:
            await self._connect()
        futures = [self._send(command) for command in commands]
        replies = await asyncio.gather(*futures, return_exceptions=True)
        for reply in replies:
            if isinstance(reply, BaseException):
                raise reply
        return replies

    async def execute_each(self, *args: Any) -> list[Any]:
        """``execute`` on every master: this one."""
        return [await self.execute(*args)]

    async def probe_writes(self) -> None:
        """Raise when Redis refuses writes (``OOM``, ``READONLY``); writes nothing."""
        await self.execute(*WRITE_PROBE)

    async def execute_durably(
        self,
        command: tuple[Any, ...],
        replicas: int,
        timeout_ms: int,
        wrote: Callable[[Any], bool],
    ) -> Any:
        """Send ``command``; when ``wrote(reply)``, wait until ``replicas`` replicas have it
        (``WAIT`` on this same connection) before returning the reply.

        :raise NotReplicated: fewer replicas confirmed it within ``timeout_ms``, or the
            connection was lost before they could.
        """
        if not self._ready:
            await self._connect()
        generation = self._generation
        reply = await self._send(command)
        if not wrote(reply):
            return reply
        if self._generation != generation or not self._ready:
            raise NotReplicated(f"the connection to {self._address} was lost before WAIT")
        acked = await self._send(("WAIT", replicas, timeout_ms))
        if acked < replicas:
            raise NotReplicated(
                f"{acked} of {replicas} replicas of {self._address} confirmed the write "
                f"within {timeout_ms} ms"
            )
        return reply

    @property
    def address(self) -> str:
        """Where it connects (the last address its locator gave)."""
        return self._address

    def _send(self, args: tuple[Any, ...]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._out.append(hiredis.pack_command(args))
        self._pending.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        timer = loop.call_later(self._timeout, self._expire, future)
        future.add_done_callback(lambda _: timer.cancel())
        return future

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._transport is not None and self._out:
            self._transport.write(b"".join(self._out))
        self._out.clear()

    async def _connect(self) -> None:
        if self._lock.locked() and self._failure is not None:
            # Redis was just lost and one caller is finding it again: the others fail at once
            # instead of each waiting for that attempt (half-open)
            raise type(self._failure)(str(self._failure))
        async with self._lock:
            if self._ready:
                return
            loop = asyncio.get_running_loop()
            if loop.time() - self._failed_at < self._timeout and self._failure is not None:
                # another caller just failed to connect: fail at once rather than queue up
                # behind the lock for a timeout each
                raise type(self._failure)(str(self._failure))
            try:
                await self._open(loop)
            except rex.RedisError as exc:
                self._failed_at, self._failure = loop.time(), exc
                raise
            self._failure = None

    async def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._locate is not None:
            try:
                async with asyncio.timeout(self._timeout):
                    self._host, self._port = await self._locate()
            except TimeoutError:
                raise ConnectTimeout("finding the master timed out") from None
            except rex.ConnectionError as exc:
                raise CannotConnect(f"finding the master: {exc}") from exc
        try:
            async with asyncio.timeout(self._timeout):
                if self._path:
                    transport, protocol = await loop.create_unix_connection(
                        lambda: _Protocol(self), self._path
                    )
                else:
                    transport, protocol = await loop.create_connection(
                        lambda: _Protocol(self), self._host, self._port, ssl=self._ssl
                    )
        except TimeoutError:
            raise ConnectTimeout(f"connecting to {self._address} timed out") from None
        except OSError as exc:
            raise CannotConnect(f"cannot connect to {self._address}: {exc}") from exc
        self._reader = hiredis.Reader()
        handshake: list[tuple[Any, ...]] = []
        if self._password is not None:
            auth = ("AUTH", self._username, self._password) if self._username else None
            handshake.append(auth or ("AUTH", self._password))
        if self._db:
            handshake.append(("SELECT", self._db))
        # Callers queue commands only once the connection is ready, after the handshake:
        # nothing may reach Redis before AUTH and SELECT. The handshake goes out in one write.
        self._transport, self._protocol = transport, protocol
        replies = [self._send(command) for command in handshake]
        try:
            for reply in replies:
                await reply
        except BaseException:
            self.close()  # a failed or cancelled handshake leaves no half-ready connection
            raise
        self._generation += 1
        self._ready = True

    @property
    def _address(self) -> str:
        return self._path or f"{self._host}:{self._port}"

    def _received(self, data: bytes) -> None:
        self._reader.feed(data)
        pending = self._pending
        while True:
            reply = self._reader.gets()
            if reply is False:
                return
            if not pending:  # nothing waits for it: out of step, start afresh
                self._fail(rex.ConnectionError("unexpected reply from Redis"))
                return
            future = pending.popleft()
            if future.done():
                continue
            if isinstance(reply, hiredis.ReplyError):
                error = reply_error(str(reply))
                future.set_exception(error)
                if isinstance(error, rex.ReadOnlyError):
                    # a failover made this server a replica: reconnect to find the new primary
                    self._fail(rex.ConnectionError(f"{self._address} is read-only now"))
                    return
            else:
                future.set_result(reply)

    def _expire(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            self._fail(rex.TimeoutError(f"Redis at {self._address} did not answer in time"))

    def _lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._fail(rex.ConnectionError(f"connection to {self._address} lost{reason}"))

    def _fail(self, error: rex.RedisError) -> None:
        self._ready = False
        self._protocol = None
        transport, self._transport = self._transport, None
        pending, self._pending = self._pending, deque()
        self._out.clear()
        for future in pending:
            if not future.done():
                future.set_exception(error)
        if transport is not None:
            transport.abort()

    def close(self) -> None:
        """Close the connection; commands still waiting fail with ``ConnectionError``."""
        self._fail(rex.ConnectionError("connection closed"))

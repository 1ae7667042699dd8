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
from typing import Any

import hiredis
from redis import exceptions as rex
from redis._parsers.base import BaseParser
from redis.asyncio.connection import SSLConnection, parse_url


class _Protocol(asyncio.Protocol):
    def __init__(self, owner: MultiplexedConnection) -> None:
        self._owner = owner

    def data_received(self, data: bytes) -> None:
        self._owner._received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._owner._lost(exc)


class MultiplexedConnection:
    """A pipelined Redis connection for many concurrent callers.

    :param url: ``redis://[[user]:password@]host[:port][/db]``, ``rediss://`` or
        ``unix:///path``.
    :param timeout: seconds a command may take, connecting included.
    """

    def __init__(self, url: str, timeout: float) -> None:
        params = parse_url(url)
        self._host: str = params.get("host", "localhost")
        self._port: int = int(params.get("port", 6379))
        self._path: str | None = params.get("path")
        self._db = int(params.get("db") or 0)
        self._username: str | None = params.get("username")
        self._password: str | None = params.get("password")
        self._ssl = params.get("connection_class") is SSLConnection
        self._timeout = timeout
        self._transport: asyncio.Transport | None = None
        self._reader = hiredis.Reader()
        self._pending: deque[asyncio.Future[Any]] = deque()
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._lock = asyncio.Lock()

    async def execute(self, *args: Any) -> Any:
        """Send one command and return its reply.

        :raise redis.exceptions.RedisError: the subclass redis-py would raise (``NoScriptError``,
            ``ConnectionError``, ``TimeoutError``, ...).
        """
        if self._transport is None:
            await self._connect()
        return await self._send(args)

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
        async with self._lock:
            if self._transport is not None:
                return
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout):
                    if self._path:
                        transport, _ = await loop.create_unix_connection(
                            lambda: _Protocol(self), self._path
                        )
                    else:
                        transport, _ = await loop.create_connection(
                            lambda: _Protocol(self),
                            self._host,
                            self._port,
                            ssl=ssl.create_default_context() if self._ssl else None,
                        )
            except TimeoutError:
                raise rex.TimeoutError(f"connecting to {self._address} timed out") from None
            except OSError as exc:
                raise rex.ConnectionError(f"cannot connect to {self._address}: {exc}") from exc
            self._transport = transport
            self._reader = hiredis.Reader()
            handshake: list[tuple[Any, ...]] = []
            if self._password is not None:
                auth = ("AUTH", self._username, self._password) if self._username else None
                handshake.append(auth or ("AUTH", self._password))
            if self._db:
                handshake.append(("SELECT", self._db))
            try:
                for command in handshake:
                    await self._send(command)
            except rex.RedisError:
                self.close()
                raise

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
                future.set_exception(BaseParser.parse_error(str(reply)))  # type: ignore[no-untyped-call]
            else:
                future.set_result(reply)

    def _expire(self, future: asyncio.Future[Any]) -> None:
        if not future.done():
            self._fail(rex.TimeoutError(f"Redis at {self._address} did not answer in time"))

    def _lost(self, exc: Exception | None) -> None:
        self._transport = None
        reason = f": {exc}" if exc else ""
        self._fail(rex.ConnectionError(f"connection to {self._address} lost{reason}"))

    def _fail(self, error: rex.RedisError) -> None:
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

"""Running a bidirectional stream of calls: each message decided as a unary call would be,
concurrently, and answered in arrival order."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Generic, Protocol, TypeVar

import grpc

from sidecar.domain.errors import InvalidArgument, Unavailable
from sidecar.transport.runner import MethodMetrics, UnaryRunner
from sidecar.transport.status import Context, abort_with, counted_status, status_for

C = TypeVar("C")
T = TypeVar("T")
M = TypeVar("M")
M_co = TypeVar("M_co", covariant=True)

# What a stream's queue holds besides answers: the caller half-closed; the gate closed.
_END = object()
_CLOSING = object()
STREAM_IN_FLIGHT = 256  # messages read and not yet answered, per stream


class StreamCalls(Protocol[C, T, M_co]):
    """What one kind of stream does with its messages: each is read once into a call ``C``,
    decided into a result ``T``, and answered with a message ``M_co``."""

    def read(self, request: Any) -> C:
        """The call a parsed message asks for, converted from the wire once."""
        ...

    def workspace(self, call: C) -> str:
        """The workspace the call is about, as logs and metrics name it."""
        ...

    def answer_now(self, call: C) -> T | None:
        """The call's result without awaiting anything (the warm path), or ``None``."""
        ...

    def decide(self, call: C) -> Awaitable[T]:
        """The call's result."""
        ...

    def answered(self, call: C, result: T) -> M_co:
        """The message answering the call with ``result``."""
        ...

    def error(self, call: C | None, code: grpc.StatusCode, details: str) -> M_co:
        """The message answering a call with an error status (``None``: a message that could
        not be parsed)."""
        ...


def refused(method: str, exc: Exception, workspace: str = "") -> tuple[grpc.StatusCode, str]:
    """The status one message of a stream is answered with, logged and counted as
    ``abort_with`` does for a unary call, without ending the stream."""
    return counted_status("message", method, exc, workspace)


class OrderedStream(UnaryRunner):
    """A ``UnaryRunner`` that also runs bidirectional streams of calls: each message is
    decided as a unary call would be, concurrently, and answered in arrival order.

    A stream holds one place of the gate for its whole life, and counts toward its drain: on
    a shutdown it reads no more, answers the messages it read, and ends ``UNAVAILABLE``.
    Every message is counted in the method's metrics as a unary call is (its status, its
    time from read to decision, in flight); ``after`` sees each decision.
    """

    async def ordered(
        self,
        method: str,
        context: Context,
        requests: AsyncIterator[Any],
        calls: StreamCalls[C, T, M],
        in_flight: int = STREAM_IN_FLIGHT,
    ) -> None:
        """Answer every request of ``requests`` (parsed messages, or the ``InvalidArgument``
        of one that could not be) in order, through ``context.write``: each is read into a
        call once (``calls.read``) and answered with its result (``calls.answered``) or its
        error (``calls.error``). At most ``in_flight`` requests are read and not yet
        answered: the next is read once the oldest is written. A call ``calls.answer_now``
        answers is not awaited: no task is made for it, and when no answer before it waits to
        be written, the reader writes it itself."""
        gate = self.gate
        try:
            gate.enter()
        except Exception as exc:
            await abort_with(context, method, exc)
            raise  # abort raises; this keeps type checkers informed
        stream = _Stream(self, self.method(method), context, calls, in_flight)
        gate.on_close.add(stream.closing)
        reader = asyncio.create_task(stream.read(requests))
        try:
            await stream.write()
            await reader  # its errors (a broken stream) end the call
        finally:
            gate.on_close.discard(stream.closing)
            reader.cancel()
            gate.leave()


class _Stream(Generic[C, T, M]):
    """One stream's messages on their way: read, decided concurrently, written in order."""

    __slots__ = ("_calls", "_context", "_measured", "_queue", "_queued", "_room", "_runner")

    def __init__(
        self,
        runner: UnaryRunner,
        measured: MethodMetrics,
        context: Context,
        calls: StreamCalls[C, T, M],
        in_flight: int,
    ) -> None:
        self._runner = runner
        self._measured = measured
        self._context = context
        self._calls = calls
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = asyncio.Semaphore(in_flight)
        self._queued = 0  # in the queue and not yet written: while none, the reader writes

    def closing(self) -> None:
        """The gate closed: the writer ends the stream ``UNAVAILABLE`` when it gets here."""
        self._queue.put_nowait(_CLOSING)

    async def read(self, requests: AsyncIterator[Any]) -> None:
        """Read, decide or start deciding, and queue (or write) every request in turn."""
        calls, context, queue, room = self._calls, self._context, self._queue, self._room
        gate = self._runner.gate
        try:
            while True:
                await room.acquire()
                try:
                    request = await anext(requests)
                except StopAsyncIteration:
                    return
                if gate.closed:
                    return  # read after the drain began: left unanswered
                if isinstance(request, InvalidArgument):
                    code, details = refused(self._measured.name, request)
                    item: Any = calls.error(None, code, details)
                else:
                    call = calls.read(request)
                    if (item := self._now(call)) is None:
                        item = asyncio.ensure_future(self._decide(call))
                if self._queued or isinstance(item, asyncio.Future):
                    self._queued += 1
                    queue.put_nowait(item)
                else:
                    # nothing before it is unwritten, and the writer waits on the queue:
                    # written here, in order, without handing it over
                    await context.write(item)
                    room.release()
        finally:
            queue.put_nowait(_END)

    async def write(self) -> None:
        """Write the queued answers in order, each once it is decided, until the reader
        ends; end the stream ``UNAVAILABLE`` when the gate closes."""
        context, queue, room = self._context, self._queue, self._room
        while True:
            item = await queue.get()
            if item is _END:
                return
            if item is _CLOSING:
                code, details = status_for(
                    Unavailable("the sidecar is shutting down; resend what was not answered")
                )
                await context.abort(code, details)
            if isinstance(item, asyncio.Future):
                item = await item
            await context.write(item)
            self._queued -= 1
            room.release()

    def _now(self, call: C) -> M | None:
        """The answer of a call answered without awaiting, counted as a decided call."""
        calls = self._calls
        started = time.perf_counter()
        try:
            result = calls.answer_now(call)
        except Exception as exc:  # counted and logged; decided as any message
            self._runner.warm_errors.failed(exc)
            return None
        if result is None:
            return None
        message = calls.answered(call, result)
        self._runner.settled(self._measured, calls.workspace(call), result, started)
        return message

    async def _decide(self, call: C) -> M:
        """The answer of a call decided as a unary call is: in flight meanwhile, its
        error answered as a status."""
        calls, measured = self._calls, self._measured
        measured.in_flight.inc()
        started = time.perf_counter()
        try:
            result = await calls.decide(call)
            message = calls.answered(call, result)
        except Exception as exc:
            measured.seconds.observe(time.perf_counter() - started)
            code, details = refused(measured.name, exc, calls.workspace(call))
            return calls.error(call, code, details)
        finally:
            measured.in_flight.dec()
        self._runner.settled(measured, calls.workspace(call), result, started)
        return message

"""The servicers' methods registered with the gRPC server, taking requests as raw bytes.

grpc's generated registration parses a request before the servicer sees it: undecodable bytes
then end as ``UNKNOWN`` with parser internals, and a batch of millions of empty contacts is
parsed (a second and most of a gigabyte) before its size can be refused. Here a request whose
repeated contacts could exceed the bound is counted on the wire first, stopping at the bound,
and parsing errors are ``INVALID_ARGUMENT`` naming the message type. A bidirectional stream's
servicer method gets its messages parsed one by one, an undecodable one as its
``InvalidArgument``, so that one bad message need not end the stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from sidecar.domain.errors import InvalidArgument
from sidecar.transport.status import Context, abort_with

# The repeated Contact field of each request that carries many: (field name, field number).
_REPEATED_CONTACTS = {
    "mac.v1.ActivateBatchRequest": ("contacts", 2),
    "mac.v1.CheckBatchRequest": ("contacts", 2),
    "mac.v1.MergeRequest": ("sources", 2),
    "mac.v1.SetExemptRequest": ("contacts", 2),
}
_MIN_ENTRY_BYTES = 2  # an entry of a repeated message field: its tag and a length of 0


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise DecodeError("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def count_field(data: bytes, number: int, stop_after: int) -> int:
    """How many times top-level field ``number`` occurs in ``data``, counting no further than
    ``stop_after + 1``.

    :raise DecodeError: for bytes that are not protobuf wire format.
    """
    count = at = 0
    while at < len(data):
        key, at = _varint(data, at)
        wire = key & 7
        if wire == 0:
            _, at = _varint(data, at)
        elif wire == 1:
            at += 8
        elif wire == 2:
            length, at = _varint(data, at)
            at += length
        elif wire == 5:
            at += 4
        else:
            raise DecodeError(f"wire type {wire}")
        if at > len(data):
            raise DecodeError("truncated field")
        if key >> 3 == number:
            count += 1
            if count > stop_after:
                return count
    return count


class RequestReader:
    """Parses one method's requests from raw bytes.

    :param batch_max: the most contacts a request's repeated contact field may hold.
    """

    def __init__(self, message: type[Message], batch_max: int) -> None:
        self._message = message
        self._name = message.DESCRIPTOR.full_name
        self._batch_max = batch_max
        self._repeated = _REPEATED_CONTACTS.get(self._name)

    def read(self, data: bytes) -> Any:
        """The request of ``data``.

        :raise InvalidArgument: for undecodable bytes, or more contacts than the bound (counted
            before anything is parsed).
        """
        try:
            if self._repeated and len(data) > _MIN_ENTRY_BYTES * self._batch_max:
                field, number = self._repeated
                if count_field(data, number, self._batch_max) > self._batch_max:
                    raise InvalidArgument(
                        field, f"holds more than {self._batch_max} contacts (MAC_BATCH_MAX)"
                    )
            return self._message.FromString(data)
        except DecodeError:
            raise InvalidArgument("request", f"is not a valid {self._name}") from None


Unary = Callable[[Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Context], AsyncGenerator[Any, None]]
Bidirectional = Callable[[AsyncIterator[Any], Context], Awaitable[None]]
Refused = Callable[[Exception], None]


class ParsedRequests:
    """A stream's requests as ``reader`` parses them: each a message, or the
    ``InvalidArgument`` saying why its bytes are not one. They are read with the context's
    ``read``, which is one layer less per message than grpc's request iterator."""

    def __init__(self, context: Context, reader: RequestReader) -> None:
        self._read = context.read
        self._reader = reader

    def __aiter__(self) -> ParsedRequests:
        return self

    async def __anext__(self) -> Any:
        data = await self._read()
        if data is grpc.aio.EOF:
            raise StopAsyncIteration
        try:
            return self._reader.read(data)
        except InvalidArgument as exc:
            return exc


def generic_handler(
    service: ServiceDescriptor, servicer: object, batch_max: int
) -> grpc.GenericRpcHandler:
    """A handler of every method of ``service``: :func:`method_handlers` as one generic
    handler (how grpcio's server takes them)."""
    return grpc.method_handlers_generic_handler(
        service.full_name, method_handlers(service, servicer, batch_max)
    )


def method_handlers(
    service: ServiceDescriptor, servicer: object, batch_max: int
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The handler of each method of ``service`` (unary, server streaming, or bidirectional)
    by its name, calling the servicer's method of the same name with the parsed request (with
    a ``ParsedRequests`` of a bidirectional stream's). ``add_registered_method_handlers`` takes
    them as they are (how the native engine serves a method itself). A servicer with a
    ``refused(exc)`` method is told of each request refused before it reached it."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    refused: Refused = getattr(servicer, "refused", _nobody)
    for method in service.methods:
        reader = RequestReader(GetMessageClass(method.input_type), batch_max)
        serialize = GetMessageClass(method.output_type).SerializeToString
        behaviour = getattr(servicer, method.name)
        if method.client_streaming and method.server_streaming:
            handlers[method.name] = grpc.stream_stream_rpc_method_handler(
                _bidirectional(reader, behaviour), response_serializer=serialize
            )
        elif method.client_streaming:
            raise ValueError(f"{method.full_name}: client streaming alone is not supported")
        elif method.server_streaming:
            handlers[method.name] = grpc.unary_stream_rpc_method_handler(
                _streaming(method.name, reader, behaviour, refused),
                response_serializer=serialize,
            )
        else:
            handlers[method.name] = grpc.unary_unary_rpc_method_handler(
                _unary(method.name, reader, behaviour, refused), response_serializer=serialize
            )
    return handlers


def _nobody(exc: Exception) -> None:
    """Told of nothing: a servicer without ``refused``."""


def _unary(name: str, reader: RequestReader, behaviour: Unary, refused: Refused) -> Unary:
    async def handle(data: bytes, context: Context) -> Any:
        try:
            request = reader.read(data)
        except InvalidArgument as exc:
            refused(exc)
            await abort_with(context, name, exc)
        return await behaviour(request, context)

    return handle


def _streaming(
    name: str, reader: RequestReader, behaviour: Streaming, refused: Refused
) -> Streaming:
    async def handle(data: bytes, context: Context) -> AsyncGenerator[Any, None]:
        try:
            request = reader.read(data)
        except InvalidArgument as exc:
            refused(exc)
            await abort_with(context, name, exc)
        # closed with the outer stream, so the servicer's cleanup runs at once
        async with contextlib.aclosing(behaviour(request, context)) as responses:
            async for response in responses:
                yield response

    return handle


def _bidirectional(reader: RequestReader, behaviour: Bidirectional) -> Bidirectional:
    async def handle(requests: AsyncIterator[bytes], context: Context) -> None:
        await behaviour(ParsedRequests(context, reader), context)  # `requests` stays unread

    return handle

"""``python -m bench.echo --port N [--engine native]``: a bare server that echoes request
bytes, on grpc.aio or on the native engine: one unary method, and one bidirectional stream
answering each message with its bytes (the native engine forwards streams to a grpc.aio
server behind a Unix socket, as it does the sidecar's)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import grpc

T = TypeVar("T")

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
STREAM_METHOD = f"/{SERVICE}/Stream"
# the values of MAC_GRPC_ENGINE, and what each serves with
ENGINES = {"grpcio": "grpc.aio", "native": "native"}


def native_installed() -> bool:
    """Whether the native engine (pygrpc_native) can be imported here."""
    return importlib.util.find_spec("pygrpc_native") is not None


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def _stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
) -> None:
    while isinstance(request := await context.read(), bytes):  # until grpc.aio.EOF
        await context.write(request)


def _server(engine: str) -> grpc.aio.Server:
    options = [("grpc.so_reuseport", 0)]
    if engine == "native":
        # ``import pygrpc_native.aio``: the package's lazy ``aio`` attribute recurses on
        # ``from pygrpc_native import aio`` in 0.5.0
        import pygrpc_native.aio  # type: ignore[import-not-found, unused-ignore]

        server: grpc.aio.Server = pygrpc_native.aio.server(options=options)
        return server
    return grpc.aio.server(options=options)


async def serve(port: int, engine: str = "grpcio") -> None:
    """Serve ``bench.Echo`` on 127.0.0.1:``port`` with ``engine`` until SIGINT or SIGTERM."""
    server = _server(engine)
    # No (de)serializers: the request's bytes come back unchanged. Registered, not generic,
    # handlers: the native engine serves only those itself.
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Stream": grpc.stream_stream_rpc_method_handler(_stream),
    }
    server.add_registered_method_handlers(SERVICE, handlers)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0)


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed, as the sidecar does."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is not built for every platform
        return asyncio.run(main)
    result: T = uvloop.run(main)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__)
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    parser.add_argument("--engine", choices=sorted(ENGINES), default="grpcio")
    ns = parser.parse_args()
    run_loop(serve(ns.port, ns.engine))


if __name__ == "__main__":
    main()

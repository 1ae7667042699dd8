"""``python -m bench.echo --port N``: a bare grpc.aio server that echoes request bytes: one
unary method, and one bidirectional stream answering each message with its bytes."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator, Coroutine
from typing import Any, TypeVar

import grpc

T = TypeVar("T")

SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Echo"
STREAM_METHOD = f"/{SERVICE}/Stream"


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


async def _stream(
    requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
) -> None:
    while isinstance(request := await context.read(), bytes):  # until grpc.aio.EOF
        await context.write(request)


async def serve(port: int) -> None:
    """Serve ``bench.Echo/Echo`` on 127.0.0.1:``port`` until SIGINT or SIGTERM."""
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    # No (de)serializers: the request's bytes come back unchanged.
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        "Echo": grpc.unary_unary_rpc_method_handler(_echo),
        "Stream": grpc.stream_stream_rpc_method_handler(_stream),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
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
    run_loop(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()

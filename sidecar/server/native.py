"""The native engine's server (``MAC_GRPC_ENGINE=native``): pygrpc-native's asyncio server,
with its queue to Python bounded and its forwarding socket kept off the filesystem.

Imported only through ``engines.native_module``: importing it needs the native extra.
"""

from __future__ import annotations

import os
import secrets
import sys
import threading
from typing import Any

import grpc
import pygrpc_native.aio as native_aio

# Calls taken from the front at once: the library's own batch.
_BATCH = 64
# How often a dispatcher waiting for the loop checks that the loop still runs.
_LOOP_CHECK_SECONDS = 1.0


class NativeServer(native_aio.Server):
    """pygrpc-native's ``aio.Server`` (pinned: ``pygrpc-native==0.5.0``), changed in two ways.

    - **Bounded hand-over.** The library's dispatcher thread hands every batch of calls to the
      loop as soon as Rust has it, however far behind the loop is: under overload the loop's
      queue (each call with its request) grows without bound before a handler can refuse it.
      Here it hands a batch only once the loop took the previous one, so Python holds the
      calls in progress (``MAC_MAX_CONCURRENT_RPCS``, the gate) and at most two batches more;
      the gate answers the rest ``RESOURCE_EXHAUSTED`` as they come in.
    - **No file for the forwarding socket.** Bidirectional streams and reflection are served
      by a grpc.aio server behind a Unix socket the library makes under ``/tmp``, left behind
      when the process is killed. On Linux the socket here is in the abstract namespace (no
      file, gone with the process), under an unguessable name.
    """

    def _dispatch(self) -> None:
        front, loop = self._front, self._loop
        assert front is not None
        assert loop is not None
        while (events := front.recv_batch_details(_BATCH)) is not None:
            taken = threading.Event()
            try:
                loop.call_soon_threadsafe(self._take, events, taken)
            except RuntimeError:  # the loop was closed without stop()
                front.close()
                return
            while not taken.wait(_LOOP_CHECK_SECONDS):
                if loop.is_closed():
                    front.close()
                    return

    def _take(self, events: list[tuple[Any, ...]], taken: threading.Event) -> None:
        try:
            self._on_events(events)
        finally:
            taken.set()

    async def _start_fallback(
        self,
        streamed: dict[str, dict[str, grpc.RpcMethodHandler[Any, Any]]],
        generic: list[grpc.GenericRpcHandler],
    ) -> None:
        if not sys.platform.startswith("linux"):
            await super()._start_fallback(streamed, generic)
            return
        assert self._front is not None
        name = f"mac-sidecar-{os.getpid()}-{secrets.token_hex(8)}"
        fallback = grpc.aio.server(
            self._executor, interceptors=self._interceptors, options=self._options
        )
        fallback.add_generic_rpc_handlers(generic)
        for service, handlers in streamed.items():
            fallback.add_registered_method_handlers(service, handlers)
        fallback.add_insecure_port(f"unix-abstract:{name}")
        await fallback.start()
        self._fallback = fallback
        self._front.set_fallback("\0" + name)

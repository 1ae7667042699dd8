"""The gRPC engines that serve the sidecar's listeners (``MAC_GRPC_ENGINE``): grpcio's
grpc.aio, the default, or pygrpc-native, whose HTTP/2 runs in Rust outside the GIL and hands
each call to the same handlers on this event loop.

The native engine is an optional extra, imported only when asked for: the sidecar runs, is
tested and ships without it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from sidecar.domain.errors import ConfigError
from sidecar.settings import Settings
from sidecar.transport.handlers import generic_handler, method_handlers

NATIVE_MISSING = (
    "MAC_GRPC_ENGINE=native needs the native extra: pip install 'mac-sidecar[native]' "
    "(or leave MAC_GRPC_ENGINE at grpcio, the default)"
)

Options = Sequence[tuple[str, Any]]


class GrpcioEngine:
    """grpcio's grpc.aio server: TLS, any number of listeners on one server, every method
    served alike."""

    name = "grpcio"
    one_listener_per_server = False

    def server(self, options: Options) -> grpc.aio.Server:
        """A server taking ``options`` (grpc's channel arguments), not yet bound."""
        return grpc.aio.server(options=options)

    def add_service(
        self, server: grpc.aio.Server, service: ServiceDescriptor, servicer: object, batch_max: int
    ) -> None:
        """Serve every method of ``service`` with ``servicer`` (``handlers.py``)."""
        server.add_generic_rpc_handlers((generic_handler(service, servicer, batch_max),))


class NativeEngine(GrpcioEngine):
    """pygrpc-native's server: unary and server-streaming methods registered by name are
    served in Rust and handed to this loop in batches; the rest (bidirectional streams,
    reflection) go to a grpc.aio server of its own behind a Unix socket. No TLS, one listener
    per server."""

    name = "native"
    one_listener_per_server = True

    def __init__(self) -> None:
        self._module = native_module()

    def server(self, options: Options) -> grpc.aio.Server:
        server: grpc.aio.Server = self._module.NativeServer(options=options)
        return server

    def add_service(
        self, server: grpc.aio.Server, service: ServiceDescriptor, servicer: object, batch_max: int
    ) -> None:
        # registered by name, so that the front serves them itself (a generic handler would
        # send every call through the forwarding socket)
        server.add_registered_method_handlers(
            service.full_name, method_handlers(service, servicer, batch_max)
        )


def native_module() -> Any:
    """``sidecar.server.native``, which imports pygrpc-native.

    :raise ConfigError: when the native extra is not installed.
    """
    try:
        return importlib.import_module("sidecar.server.native")
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] == "pygrpc_native":
            raise ConfigError(NATIVE_MISSING) from None
        raise


def engine(settings: Settings) -> GrpcioEngine:
    """The engine ``MAC_GRPC_ENGINE`` names.

    :raise ConfigError: ``native`` without the native extra installed.
    """
    if settings.grpc_engine == NativeEngine.name:
        return NativeEngine()
    return GrpcioEngine()

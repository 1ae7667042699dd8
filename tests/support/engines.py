"""The gRPC engines the integration tests run on: grpcio always, native where its extra is
installed (``make install`` adds it; elsewhere its cases skip, saying why)."""

from __future__ import annotations

import importlib.util

import pytest

NATIVE_INSTALLED = importlib.util.find_spec("pygrpc_native") is not None
NATIVE_MISSING = (
    "MAC_GRPC_ENGINE=native: pygrpc-native is not installed "
    "(pip install 'mac-sidecar[native]'; make install adds it)"
)
ENGINES = [
    pytest.param("grpcio", id="grpcio"),
    pytest.param(
        "native",
        id="native",
        marks=pytest.mark.skipif(not NATIVE_INSTALLED, reason=NATIVE_MISSING),
    ),
]
GRPCIO_ONLY = "grpcio_only"
"""A marker, ``@pytest.mark.grpcio_only("why")``: the test skips on the native engine, with
the reason the engines differ."""

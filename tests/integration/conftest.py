"""The integration tests run on both gRPC engines (``MAC_GRPC_ENGINE``): every test using a
sidecar, in process (``settings``) or as a process (``engine_env``), once on each."""

from __future__ import annotations

import pytest

from sidecar.settings import Settings
from tests.support.engines import ENGINES, GRPCIO_ONLY


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", f"{GRPCIO_ONLY}(reason): skipped on the native engine, for the reason given"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker(GRPCIO_ONLY)
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        if callspec.params.get("grpc_engine") == "native":
            item.add_marker(pytest.mark.skip(reason=f"grpcio only: {marker.args[0]}"))


@pytest.fixture(scope="session", params=ENGINES)
def grpc_engine(request: pytest.FixtureRequest) -> str:
    """The engine of the sidecars a test starts: ``grpcio``, then ``native``."""
    engine: str = request.param
    return engine


@pytest.fixture
def engine_env(grpc_engine: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``MAC_GRPC_ENGINE`` set for the test, so the sidecar processes it starts use the
    engine."""
    monkeypatch.setenv("MAC_GRPC_ENGINE", grpc_engine)
    return grpc_engine


@pytest.fixture
def settings(settings: Settings, engine_env: str) -> Settings:
    return settings.replace(grpc_engine=engine_env)

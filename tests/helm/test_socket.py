"""grpc.socket: the Unix domain socket (MAC_GRPC_UDS) in an emptyDir the app container shares."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.settings import Settings
from tests.helm.chart import (
    CONTAINER,
    FULLNAME,
    Obj,
    case_values,
    container_env,
    example_chart,
    merge,
    one,
    render,
    render_case,
    sidecar_container,
)

SOCKET_DIR = "/var/run/mac-sidecar"
SOCKET = f"{SOCKET_DIR}/grpc.sock"
MOUNT = {"name": "mac-sidecar-socket", "mountPath": SOCKET_DIR}
VOLUME = {"name": "mac-sidecar-socket", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_chart(tmp_path_factory.mktemp("helm"))


def _pod_spec(objects: list[Obj]) -> Obj:
    spec: Obj = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def _container(spec: Obj, name: str) -> Obj:
    found: Obj = next(c for c in spec["containers"] if c["name"] == name)
    return found


def test_sidecar_mode_sets_the_socket_in_the_shared_config_map() -> None:
    data = one(render_case("sidecar-mode"), "ConfigMap", FULLNAME)["data"]
    assert data["MAC_GRPC_UDS"] == SOCKET
    assert data["MAC_GRPC_ADDR"] == "0.0.0.0:50051"  # TCP stays


def test_the_routing_pod_shares_the_socket_volume_with_its_sidecar(parent: Path) -> None:
    objects = render(None, chart=parent)
    spec = _pod_spec(objects)
    sidecar = _container(spec, CONTAINER)
    routing = _container(spec, "routing")
    assert container_env(objects, sidecar)["MAC_GRPC_UDS"] == {"value": SOCKET}
    assert MOUNT in sidecar["volumeMounts"]
    assert routing["volumeMounts"] == [MOUNT]  # "mac-sidecar.socketVolumeMount"
    assert {"name": "ENFORCER_ADDR", "value": f"unix:{SOCKET}"} in routing["env"]
    assert VOLUME in spec["volumes"]


def test_the_example_falls_back_to_localhost_without_the_socket(parent: Path) -> None:
    values: dict[str, Any] = {"mac-sidecar": {"grpc": {"socket": {"enabled": False}}}}
    objects = render(values, chart=parent)
    spec = _pod_spec(objects)
    routing = _container(spec, "routing")
    assert "volumeMounts" not in routing
    assert {"name": "ENFORCER_ADDR", "value": "127.0.0.1:50051"} in routing["env"]
    assert "mac-sidecar-socket" not in {v["name"] for v in spec["volumes"]}
    assert "MAC_GRPC_UDS" not in container_env(objects, _container(spec, CONTAINER))


def test_deployment_mode_has_no_socket_unless_asked() -> None:
    objects = render_case("default")
    container = sidecar_container(objects)
    assert "MAC_GRPC_UDS" not in container_env(objects, container)
    assert MOUNT not in container["volumeMounts"]
    assert VOLUME not in _pod_spec(objects)["volumes"]

    values = merge(case_values("default"), {"grpc": {"socket": {"enabled": True, "dir": "/run/m"}}})
    objects = render(values)
    container = sidecar_container(objects)
    assert container_env(objects, container)["MAC_GRPC_UDS"] == {"value": "/run/m/grpc.sock"}
    assert {"name": "mac-sidecar-socket", "mountPath": "/run/m"} in container["volumeMounts"]


def test_the_rendered_socket_reaches_the_settings() -> None:
    objects = render_case("full-features")
    env = container_env(objects, sidecar_container(objects))
    environ = {k: str(v["value"]) for k, v in env.items() if "value" in v}
    environ |= {"MAC_REDIS_URL": "redis://redis:6379/0", "MAC_IDENTITY_SECRET": "s" * 32}
    environ.pop("MAC_IDENTITY_SECRET_FILE", None)
    environ.pop("MAC_PLAN_CATALOG", None)
    settings = Settings.from_env(environ)
    assert settings.grpc_uds == SOCKET
    assert settings.warm_seconds == 0.5


def test_the_socket_with_several_workers_is_refused() -> None:
    values = merge(case_values("sidecar-mode"), {"config": {"workers": 2}})
    with pytest.raises(Exception, match=r"grpc\.socket takes one process"):
        render(values)
    # without the socket, workers are fine
    render(merge(values, {"grpc": {"socket": {"enabled": False}}}))

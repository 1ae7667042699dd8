"""The example routing service carries the sidecar through the chart's named templates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.helm.chart import (
    CONTAINER,
    EXAMPLE,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    SETTINGS_ENV,
    TMP_MOUNT,
    Obj,
    container_env,
    example_chart,
    find,
    one,
    render,
    rendered_mac_names,
    validate_object,
)

SIDECAR_FULLNAME = f"{RELEASE}-mac-sidecar"


@pytest.fixture(scope="module")
def parent(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return example_chart(tmp_path_factory.mktemp("helm"))


def _render(parent: Path, values: dict[str, Any] | None = None) -> list[Obj]:
    return render(values, chart=parent)


def _pod_spec(objects: list[Obj]) -> Obj:
    deployment = one(objects, "Deployment", f"{RELEASE}-routing-service")
    spec: Obj = deployment["spec"]["template"]["spec"]
    return spec


def test_the_example_depends_on_this_chart() -> None:
    chart = yaml.safe_load((EXAMPLE / "Chart.yaml").read_text())
    (dependency,) = chart["dependencies"]
    assert dependency["name"] == "mac-sidecar"
    assert dependency["repository"] == "file://../../mac-sidecar"


def test_the_routing_pod_carries_the_sidecar(parent: Path) -> None:
    objects = _render(parent)
    spec = _pod_spec(objects)
    assert "initContainers" not in spec
    names = [c["name"] for c in spec["containers"]]
    assert names == ["routing", CONTAINER]
    sidecar = spec["containers"][1]
    env = container_env(objects, sidecar)
    assert env["MAC_GRPC_ADDR"] == {"value": "0.0.0.0:50051"}
    assert env["MAC_REDIS_URL"] == {"secret": (SIDECAR_FULLNAME, "redis-url")}
    assert env["MAC_IDENTITY_SECRET"] == {"secret": (SIDECAR_FULLNAME, "identity-secret")}
    assert set(env) & SETTINGS_ENV == set(env)
    assert sidecar["readinessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert sidecar["livenessProbe"]["grpc"] == {"port": 50051, "service": "liveness"}
    assert sidecar["startupProbe"]["grpc"] == {"port": 50051, "service": "liveness"}
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["runAsUser"] == 10001
    assert "restartPolicy" not in sidecar
    assert TMP_MOUNT in sidecar["volumeMounts"]
    assert spec["volumes"][0]["name"] == "mac-sidecar-tmp"
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert "checksum/mac-sidecar-config" in annotations


def test_the_shared_pieces_come_from_the_dependency(parent: Path) -> None:
    objects = _render(parent)
    assert one(objects, "ConfigMap", SIDECAR_FULLNAME)["metadata"]["namespace"] == NAMESPACE
    assert one(objects, "Secret", SIDECAR_FULLNAME)
    # sidecar mode: no workload, Service or test Pod of the sidecar's own
    assert [d["metadata"]["name"] for d in find(objects, "Deployment")] == [
        f"{RELEASE}-routing-service"
    ]
    assert [s["metadata"]["name"] for s in find(objects, "Service")] == [
        f"{RELEASE}-routing-service"
    ]
    assert find(objects, "Pod") == []
    assert rendered_mac_names(objects) <= SETTINGS_ENV


@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_the_parent_renders_valid_kubernetes_objects(parent: Path, version: str) -> None:
    for o in _render(parent):
        validate_object(o, version)


@pytest.mark.parametrize("version", ["1.29.0", KUBE_VERSIONS[-1]])
def test_the_native_sidecar_pod_is_valid_from_1_29(parent: Path, version: str) -> None:
    for o in _render(parent, {"mac-sidecar": {"sidecar": {"native": True}}}):
        validate_object(o, version)


def test_the_sidecar_can_be_a_native_sidecar(parent: Path) -> None:
    spec = _pod_spec(_render(parent, {"mac-sidecar": {"sidecar": {"native": True}}}))
    assert [c["name"] for c in spec["containers"]] == ["routing"]
    (init,) = spec["initContainers"]
    assert init["name"] == CONTAINER
    assert init["restartPolicy"] == "Always"
    assert init["startupProbe"]["grpc"]["service"] == "liveness"


def test_parent_values_reach_the_sidecar(parent: Path) -> None:
    values = {
        "mac-sidecar": {"config": {"failureMode": "allow"}, "identitySecret": {"asFile": True}}
    }
    objects = _render(parent, values)
    spec = _pod_spec(objects)
    env = container_env(objects, spec["containers"][1])
    assert env["MAC_FAILURE_MODE"] == {"value": "allow"}
    assert "MAC_IDENTITY_SECRET" not in env
    assert any(v["name"] == "mac-sidecar-identity" for v in spec["volumes"])


def test_the_parent_chart_lints(parent: Path) -> None:
    report = helm.lint(parent, strict=True, namespace=NAMESPACE, kube_version="v1.27.0")
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == []

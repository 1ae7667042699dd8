"""Rendering the Helm chart with Helm's own engine (helm-python-sdk), and reading what it made."""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate  # type: ignore[import-untyped]
import yaml

from sidecar.cli.connection import CLI_ENV
from sidecar.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / "helm"
CHART = HELM / "mac-sidecar"
CI = CHART / "ci"
EXAMPLE = HELM / "examples" / "routing-service"
RELEASE = "rel"
NAMESPACE = "mac"
FULLNAME = f"{RELEASE}-mac-sidecar"
CONTAINER = "mac-sidecar"
# The emptyDir the chart mounts for the sidecar (a path in the container, not on this machine).
TMP_MOUNT = {"name": "mac-sidecar-tmp", "mountPath": "/tmp"}  # noqa: S108

# The values files under ci/, by name: default-values.yaml is "default".
CASES = sorted(p.name.removesuffix("-values.yaml") for p in CI.glob("*-values.yaml"))
# Kubernetes versions every object must be valid for: the oldest supported, the newest known.
KUBE_VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
MONITORING = "monitoring.coreos.com/v1"
CERT_MANAGER = "cert-manager.io/v1"
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SETTINGS_ENV = frozenset(f.metadata["env"] for f in dataclasses.fields(Settings))
# What a MAC_* variable of the chart may be: a setting of the sidecar, or one the CLI in the
# pod reads (its TLS options).
KNOWN_ENV = SETTINGS_ENV | CLI_ENV

Obj = dict[str, Any]


def case_values(case: str) -> dict[str, Any]:
    """The values of ``ci/<case>-values.yaml``."""
    loaded = yaml.safe_load((CI / f"{case}-values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in, recursively (a copy)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def objects_of(manifests: dict[str, str]) -> list[Obj]:
    """The Kubernetes objects of rendered manifests (by template path), in path order."""
    objects: list[Obj] = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        for document in yaml.safe_load_all(text):
            if document:
                assert isinstance(document, dict), f"{path}: not a mapping"
                objects.append(document)
    return objects


def render_raw(
    values: dict[str, Any] | None = None,
    *,
    chart: Path = CHART,
    release: str = RELEASE,
    **options: Any,
) -> dict[str, str]:
    """The chart's templates rendered by Helm, by template path (NOTES.txt too)."""
    with helm.Chart.load(chart) as loaded:
        return loaded.render(values or {}, name=release, namespace=NAMESPACE, **options)


def render(values: dict[str, Any] | None = None, **options: Any) -> list[Obj]:
    """The Kubernetes objects the chart renders with ``values``."""
    return objects_of(render_raw(values, **options))


@functools.cache
def _rendered_case(case: str) -> str:
    return json.dumps(render(case_values(case)))


def render_case(case: str) -> list[Obj]:
    """The objects rendered from ``ci/<case>-values.yaml`` (rendered once, a fresh copy)."""
    objects: list[Obj] = json.loads(_rendered_case(case))
    return objects


def notes(values: dict[str, Any], *, release: str = RELEASE) -> str:
    """The NOTES.txt Helm prints after an install with ``values``."""
    return render_raw(values, release=release)[f"{CHART.name}/templates/NOTES.txt"]


def find(objects: list[Obj], kind: str, name: str | None = None) -> list[Obj]:
    """The objects of ``kind`` (and ``name``)."""
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: list[Obj], kind: str, name: str | None = None) -> Obj:
    """The one object of ``kind`` (and ``name``)."""
    found = find(objects, kind, name)
    assert len(found) == 1, f"{len(found)} {kind} objects named {name}"
    return found[0]


def pod_specs(objects: list[Obj]) -> Iterator[tuple[Obj, Obj]]:
    """Every pod spec of the objects, with the object holding it."""
    for o in objects:
        if o["kind"] == "Pod":
            yield o, o["spec"]
        elif o["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
            yield o, o["spec"]["template"]["spec"]


def containers(spec: Obj) -> list[Obj]:
    """Every container of a pod spec, init containers first."""
    return list(spec.get("initContainers") or []) + list(spec.get("containers") or [])


def sidecar_containers(objects: list[Obj]) -> list[Obj]:
    """The MAC sidecar containers of every pod spec."""
    return [c for _, spec in pod_specs(objects) for c in containers(spec) if c["name"] == CONTAINER]


def sidecar_container(objects: list[Obj]) -> Obj:
    """The one MAC sidecar container."""
    found = sidecar_containers(objects)
    assert len(found) == 1, f"{len(found)} sidecar containers"
    return found[0]


def secret_data(secret: Obj) -> dict[str, str]:
    """A Secret's data, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def container_env(objects: list[Obj], container: Obj) -> dict[str, Obj]:
    """What a container's environment holds, by variable name: ``{"value": ...}`` for a
    literal (a ConfigMap of the chart read through envFrom included), ``{"secret": (name,
    key)}`` for a Secret reference, ``{"from": ...}`` for anything else."""
    env: dict[str, Obj] = {}
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef")
        assert ref is not None, f"envFrom other than a ConfigMap: {source}"
        for key, value in (one(objects, "ConfigMap", ref["name"]).get("data") or {}).items():
            env[key] = {"value": value}
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = {"value": entry["value"]}
        elif "secretKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = {"secret": (ref["name"], ref["key"])}
        else:
            env[entry["name"]] = {"from": entry.get("valueFrom")}
    return env


def rendered_mac_names(objects: list[Obj]) -> set[str]:
    """Every ``MAC_*`` variable any container of the objects is given, and every one in a
    ConfigMap (in sidecar mode, the routing pods read the chart's ConfigMap)."""
    in_pods = {
        name
        for _, spec in pod_specs(objects)
        for c in containers(spec)
        for name in container_env(objects, c)
    }
    in_config_maps = {key for cm in find(objects, "ConfigMap") for key in cm.get("data") or {}}
    return {name for name in in_pods | in_config_maps if name.startswith("MAC_")}


def lint(values: dict[str, Any], *, kube_version: str = "v1.27.0", chart: Path = CHART) -> Obj:
    """``helm lint --strict`` of the chart with ``values``."""
    return helm.lint(chart, values, strict=True, namespace=NAMESPACE, kube_version=kube_version)


def example_chart(tmp: Path) -> Path:
    """The example parent chart, copied beside a copy of this chart, its dependency built."""
    (tmp / "examples").mkdir()
    shutil.copytree(CHART, tmp / CHART.name)
    parent = tmp / "examples" / EXAMPLE.name
    shutil.copytree(EXAMPLE, parent, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    helm.dependency_update(parent)
    return parent


def check_custom_resource(o: Obj) -> None:
    """Check a Prometheus Operator object: apiVersion, kind and required fields."""
    assert o["apiVersion"] == MONITORING
    assert DNS_NAME.match(o["metadata"]["name"])
    assert o["metadata"]["namespace"] == NAMESPACE
    spec = o["spec"]
    if o["kind"] in ("ServiceMonitor", "PodMonitor"):
        assert spec["selector"].get("matchLabels") or spec["selector"].get("matchExpressions")
        endpoints = spec["endpoints" if o["kind"] == "ServiceMonitor" else "podMetricsEndpoints"]
        assert endpoints
        assert all(e["port"] == "mac-metrics" for e in endpoints)
        assert all(e["path"] == "/metrics" for e in endpoints)
    elif o["kind"] == "PrometheusRule":
        assert spec["groups"], "no rule groups"
        for group in spec["groups"]:
            assert group["name"]
            assert group["rules"]
            for rule in group["rules"]:
                assert isinstance(rule["expr"], str)
                assert rule["expr"].strip()
                assert ("alert" in rule) != ("record" in rule), rule
    else:
        raise AssertionError(f"unexpected custom resource {o['kind']}")


# The fields of a cert-manager Certificate the chart may set, and what each must be.
_CERTIFICATE_SPEC = {
    "secretName": str,
    "secretTemplate": dict,
    "issuerRef": dict,
    "duration": str,
    "renewBefore": str,
    "dnsNames": list,
    "ipAddresses": list,
    "privateKey": dict,
    "usages": list,
}
_USAGES = {"digital signature", "key encipherment", "server auth", "client auth"}
_GO_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+$")


def check_certificate(o: Obj) -> None:
    """Check a cert-manager Certificate: the fields cert-manager.io/v1 has, of their types."""
    assert o["apiVersion"] == CERT_MANAGER
    assert o["kind"] == "Certificate"
    assert DNS_NAME.match(o["metadata"]["name"])
    assert o["metadata"]["namespace"] == NAMESPACE
    spec = o["spec"]
    assert set(spec) <= set(_CERTIFICATE_SPEC), sorted(set(spec) - set(_CERTIFICATE_SPEC))
    for key, kind in _CERTIFICATE_SPEC.items():
        assert key not in spec or isinstance(spec[key], kind), key
    assert DNS_NAME.match(spec["secretName"])
    assert spec["issuerRef"]["name"]
    assert set(spec["issuerRef"]) <= {"name", "kind", "group"}
    assert spec["issuerRef"].get("kind", "Issuer") in ("Issuer", "ClusterIssuer")
    assert spec["dnsNames"]
    assert all(DNS_NAME.match(name) for name in spec["dnsNames"])
    assert set(spec["usages"]) <= _USAGES
    assert set(spec.get("secretTemplate", {})) <= {"labels", "annotations"}
    for key in ("duration", "renewBefore"):
        assert key not in spec or _GO_DURATION.match(spec[key]), key
    key = spec["privateKey"]
    assert set(key) <= {"algorithm", "size", "encoding", "rotationPolicy"}
    assert key["algorithm"] in ("ECDSA", "RSA", "Ed25519")
    assert key.get("encoding", "PKCS1") in ("PKCS1", "PKCS8")
    assert key.get("rotationPolicy", "Never") in ("Never", "Always")


def validate_object(o: Obj, version: str) -> None:
    """Validate an object strictly for Kubernetes ``version`` (custom resources: our checks)."""
    if o["apiVersion"] == MONITORING:
        check_custom_resource(o)
        return
    if o["apiVersion"] == CERT_MANAGER:
        check_certificate(o)
        return
    try:
        kubernetes_validate.validate(o, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(p) for p in exc.path)
        raise AssertionError(
            f"{o['kind']} {o['metadata']['name']}: {path}: {exc.message}"
        ) from None

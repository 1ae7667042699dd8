"""The pods: hardened security contexts, gRPC and HTTP probes, and the optional objects."""

from __future__ import annotations

import json
from typing import Any

import helm_python as helm
import pytest
import yaml

from tests.helm.chart import (
    CASES,
    CHART,
    CONTAINER,
    FULLNAME,
    TMP_MOUNT,
    Obj,
    case_values,
    container_env,
    containers,
    find,
    merge,
    one,
    pod_specs,
    render,
    render_case,
    sidecar_container,
    sidecar_containers,
)

DEFAULT = case_values("default")
JOURNAL_MOUNT = {"name": "mac-sidecar-journal", "mountPath": "/var/lib/mac-sidecar/journal"}
SOCKET_DIR = "/var/run/mac-sidecar"
SELECTOR = {
    "app.kubernetes.io/name": "mac-sidecar",
    "app.kubernetes.io/instance": "rel",
    "app.kubernetes.io/component": "enforcer",
}


@pytest.mark.parametrize("case", CASES)
def test_every_container_is_hardened(case: str) -> None:
    specs = list(pod_specs(render_case(case)))
    for owner, spec in specs:
        pod_context = spec.get("securityContext", {})
        for c in containers(spec):
            where = f"{owner['kind']} {owner['metadata']['name']} container {c['name']}"
            context = {**pod_context, **c.get("securityContext", {})}
            assert context.get("runAsNonRoot") is True, where
            assert context.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert c["securityContext"]["readOnlyRootFilesystem"] is True, where
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, where
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}, where
            assert context.get("runAsUser", 0) > 0, where
            if c["name"] in (CONTAINER, "health"):
                assert context["runAsUser"] == 10001, where


@pytest.mark.parametrize("case", CASES)
def test_the_sidecar_gets_a_writable_tmp_journal_and_socket_and_nothing_else(case: str) -> None:
    objects = render_case(case)
    for c in sidecar_containers(objects):
        mounts = c["volumeMounts"]
        assert mounts[0] == TMP_MOUNT
        assert mounts[1] == JOURNAL_MOUNT
        env = container_env(objects, c)
        assert env["MAC_JOURNAL_DIR"] == {"value": JOURNAL_MOUNT["mountPath"]}
        if "MAC_GRPC_UDS" in env:  # the socket's directory, written by the sidecar
            assert mounts.pop(2) == {"name": "mac-sidecar-socket", "mountPath": SOCKET_DIR}
        assert all(m.get("readOnly") is True for m in mounts[2:]), mounts
        assert all("subPath" not in m for m in mounts)  # a subPath would never see a rotation
    objects = render(DEFAULT)
    volumes = one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["name"] == "mac-sidecar-tmp"
    assert "emptyDir" in volumes[0]
    journal = next(v for v in volumes if v["name"] == "mac-sidecar-journal")
    assert journal["emptyDir"] == {"sizeLimit": "256Mi"}  # the node's disk, bounded


def test_probes_are_native_grpc_and_liveness_ignores_redis() -> None:
    c = sidecar_container(render(DEFAULT))
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert c["livenessProbe"]["grpc"] == {"port": 50051, "service": "liveness"}
    assert c["startupProbe"]["grpc"] == {"port": 50051, "service": "liveness"}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert "tcpSocket" not in c[probe]
        assert "exec" not in c[probe]
        assert "httpGet" not in c[probe]


def test_probes_follow_the_grpc_port_or_can_be_http() -> None:
    c = sidecar_container(render(merge(DEFAULT, {"grpc": {"port": 6000}})))
    assert c["startupProbe"]["grpc"] == {"port": 6000, "service": "liveness"}
    assert c["readinessProbe"]["grpc"] == {"port": 6000, "service": ""}
    assert c["ports"][0] == {"name": "mac-grpc", "containerPort": 6000, "protocol": "TCP"}
    http = {name: {"type": "http"} for name in ("startup", "liveness", "readiness")}
    c = sidecar_container(render(merge(DEFAULT, {"probes": http})))
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 9464}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9464}


def test_http_probes_need_the_metrics_port() -> None:
    http_liveness = {"liveness": {"type": "http"}}
    with pytest.raises(helm.HelmRenderError, match=r"probes\.liveness\.type http"):
        render(merge(DEFAULT, {"metrics": {"enabled": False}, "probes": http_liveness}))
    values = merge(DEFAULT, {"metrics": {"enabled": False}})
    c = sidecar_container(render(values))
    assert [p["name"] for p in c["ports"]] == ["mac-grpc", "mac-admin"]


def test_admin_has_its_own_port_unless_set_to_zero() -> None:
    objects = render(DEFAULT)
    ports = {p["name"]: p["containerPort"] for p in sidecar_container(objects)["ports"]}
    assert ports == {"mac-grpc": 50051, "mac-admin": 50052, "mac-metrics": 9464}
    service = one(objects, "Service", FULLNAME)
    service_ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert service_ports == ports
    beside = render(merge(DEFAULT, {"admin": {"port": 0}}))
    assert "mac-admin" not in {p["name"] for p in sidecar_container(beside)["ports"]}
    assert "MAC_ADMIN_ADDR" not in one(beside, "ConfigMap", FULLNAME)["data"]


def test_deployment_and_service_select_the_sidecar_pods_only() -> None:
    objects = render(DEFAULT)
    deployment = one(objects, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["selector"]["matchLabels"] == SELECTOR
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert SELECTOR.items() <= labels.items()
    assert one(objects, "Service", FULLNAME)["spec"]["selector"] == SELECTOR
    # the bundled Redis's Service selects its own pod only
    redis_selector = one(objects, "Service", f"{FULLNAME}-redis")["spec"]["selector"]
    assert redis_selector == {**SELECTOR, "app.kubernetes.io/component": "redis"}
    test_pod = one(objects, "Pod")
    assert test_pod["metadata"]["labels"]["app.kubernetes.io/component"] == "test"


def test_spread_constraints_get_the_pod_selector() -> None:
    spec = one(render(DEFAULT), "Deployment")["spec"]["template"]["spec"]
    constraints = spec["topologySpreadConstraints"]
    assert [c["topologyKey"] for c in constraints] == [
        "kubernetes.io/hostname",
        "topology.kubernetes.io/zone",
    ]
    assert all(c["labelSelector"] == {"matchLabels": SELECTOR} for c in constraints)


def test_pdb_on_by_default_and_off_when_disabled() -> None:
    pdb = one(render(DEFAULT), "PodDisruptionBudget")
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": {"matchLabels": SELECTOR}}
    off = render(merge(DEFAULT, {"podDisruptionBudget": {"enabled": False}}))
    assert find(off, "PodDisruptionBudget") == []
    minimum = render(merge(DEFAULT, {"podDisruptionBudget": {"minAvailable": "50%"}}))
    assert one(minimum, "PodDisruptionBudget")["spec"]["minAvailable"] == "50%"


def test_hpa_replaces_the_replica_count() -> None:
    assert find(render(DEFAULT), "HorizontalPodAutoscaler") == []
    objects = render_case("full-features")
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": FULLNAME,
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    targets = {m["resource"]["name"]: m["resource"]["target"] for m in hpa["spec"]["metrics"]}
    assert targets["cpu"] == {"type": "Utilization", "averageUtilization": 60}
    assert "replicas" not in one(objects, "Deployment")["spec"]


def _rules_by_port(policy: Obj) -> dict[int, list[Obj]]:
    rules: dict[int, list[Obj]] = {}
    for rule in policy["spec"]["ingress"]:
        for port in rule.get("ports", []):
            rules.setdefault(port["port"], []).extend(rule.get("from", [{}]))
    return rules


def test_network_policy_separates_enforcer_admin_and_metrics() -> None:
    assert find(render(DEFAULT), "NetworkPolicy") == []
    policy = one(render_case("full-features"), "NetworkPolicy", FULLNAME)
    assert policy["spec"]["podSelector"] == {"matchLabels": SELECTOR}
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    rules = _rules_by_port(policy)
    assert set(rules) == {50051, 50052, 9464}
    routing = {"matchLabels": {"app.kubernetes.io/name": "routing-service"}}
    assert rules[50051][0]["podSelector"] == routing
    assert rules[50051][0]["namespaceSelector"] == {
        "matchLabels": {"kubernetes.io/metadata.name": "routing"}
    }
    assert rules[50051][1]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "test"
    assert rules[50052] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "operators"}}}
    ]
    assert rules[9464] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]


def test_network_policy_in_sidecar_mode_selects_the_routing_pods() -> None:
    policy = one(render_case("sidecar-mode"), "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {
        "matchLabels": {"app.kubernetes.io/name": "routing-service"}
    }
    # no rule for the Enforcer port: the routing container calls it over localhost
    rules = _rules_by_port(policy)
    assert set(rules) == {50052, 9464, 8080}
    assert rules[8080] == [{}]  # extraIngress, as given


def test_network_policy_defaults_to_labelled_clients_operators_and_monitoring() -> None:
    policy = one(render_case("bundled-redis"), "NetworkPolicy", FULLNAME)
    rules = _rules_by_port(policy)
    assert rules[50051][0] == {"podSelector": {"matchLabels": {"mac-sidecar/client": "true"}}}
    assert rules[50052] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "operators"}}}
    ]
    beside = merge(case_values("bundled-redis"), {"admin": {"port": 0}})
    rules = _rules_by_port(one(render(beside), "NetworkPolicy", FULLNAME))
    assert set(rules) == {50051, 9464}  # Admin on the Enforcer port: operators reach it there
    assert rules[50051][-1]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "operators"
    }


def test_bundled_redis_is_reachable_from_the_sidecars_only() -> None:
    objects = render_case("bundled-redis")
    policy = one(objects, "NetworkPolicy", f"{FULLNAME}-redis")
    assert _rules_by_port(policy) == {6379: [{"podSelector": {"matchLabels": SELECTOR}}]}


def test_bundled_redis_in_sidecar_mode_is_reachable_from_the_routing_pods_only() -> None:
    bundled = {"redis": {"url": "", "bundled": {"enabled": True}}}
    values = merge(case_values("sidecar-mode"), bundled)
    policy = one(render(values), "NetworkPolicy", f"{FULLNAME}-redis")
    routing = {"matchLabels": {"app.kubernetes.io/name": "routing-service"}}
    assert _rules_by_port(policy) == {6379: [{"podSelector": routing}]}


def test_sidecar_mode_with_a_policy_needs_the_routing_pods_selector() -> None:
    values = merge(case_values("sidecar-mode"), {"sidecar": {"podSelector": None}})
    with pytest.raises(helm.HelmRenderError, match=r"need sidecar\.podSelector"):
        render(values)


def test_service_monitor_in_deployment_mode_pod_monitor_in_sidecar_mode() -> None:
    assert find(render(DEFAULT), "ServiceMonitor") == []
    monitor = one(render_case("full-features"), "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert monitor["spec"]["selector"] == {"matchLabels": SELECTOR}
    assert monitor["spec"]["endpoints"][0]["interval"] == "30s"
    sidecar_objects = render_case("sidecar-mode")
    assert find(sidecar_objects, "ServiceMonitor") == []
    pod_monitor = one(sidecar_objects, "PodMonitor")
    assert pod_monitor["spec"]["selector"] == {
        "matchLabels": {"app.kubernetes.io/name": "routing-service"}
    }
    assert pod_monitor["spec"]["podMetricsEndpoints"][0]["port"] == "mac-metrics"


def test_prometheus_rule_embeds_the_rules_file() -> None:
    assert find(render(DEFAULT), "PrometheusRule") == []
    source = yaml.safe_load((CHART / "files" / "prometheus-rules.yaml").read_text())
    rule = one(render_case("full-features"), "PrometheusRule")
    assert rule["spec"] == source["spec"]
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"


def test_grafana_dashboard_config_map_for_the_grafana_sidecar() -> None:
    assert [
        c for c in find(render(DEFAULT), "ConfigMap") if "dashboard" in c["metadata"]["name"]
    ] == []
    dashboard = one(render_case("full-features"), "ConfigMap", f"{FULLNAME}-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["metadata"]["annotations"] == {"grafana_folder": "Licensing"}
    source = json.loads((CHART / "files" / "grafana-dashboard.json").read_text())
    assert json.loads(dashboard["data"]["mac-sidecar.json"]) == source
    relabelled: dict[str, Any] = {
        "metrics": {
            "grafanaDashboard": {"enabled": True, "label": "dashboards", "labelValue": "mac"}
        }
    }
    other = one(render(merge(DEFAULT, relabelled)), "ConfigMap", f"{FULLNAME}-dashboard")
    assert other["metadata"]["labels"]["dashboards"] == "mac"
    assert "grafana_dashboard" not in other["metadata"]["labels"]


def test_helm_test_pod_checks_health_through_the_service_with_the_sidecar_image() -> None:
    objects = render(DEFAULT)
    pod = one(objects, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    (c,) = pod["spec"]["containers"]
    assert c["image"] == sidecar_container(objects)["image"] == "mac-sidecar:0.1.0"
    assert c["command"][:2] == ["python", "-c"]
    assert "grpc_health.v1" in c["command"][2]
    assert c["command"][3] == "rel-mac-sidecar.mac.svc:50051"
    assert find(render_case("sidecar-mode"), "Pod") == []


def test_image_tag_defaults_to_the_app_version_and_digest_wins() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert sidecar_container(render(DEFAULT))["image"] == f"mac-sidecar:{chart['appVersion']}"
    digest = "sha256:" + "ab" * 32
    values = merge(DEFAULT, {"image": {"repository": "r.example/mac", "digest": digest}})
    assert sidecar_container(render(values))["image"] == f"r.example/mac@{digest}"


def test_settings_changes_roll_the_pods() -> None:
    def checksum(values: dict[str, Any]) -> str:
        deployment = one(render(values), "Deployment")
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        return str(annotations["checksum/mac-sidecar-config"])

    assert checksum(DEFAULT) == checksum(DEFAULT)
    assert checksum(DEFAULT) != checksum(merge(DEFAULT, {"config": {"defaultLimit": 7}}))

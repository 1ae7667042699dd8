"""values.schema.json refuses values of the wrong type, unknown enum values and unknown keys."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.helm.chart import CASES, CHART, case_values, merge, render


@pytest.mark.parametrize("case", CASES)
def test_the_ci_values_pass_the_schema(case: str) -> None:
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(case_values(case))


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"mode": "foo"}, "mode"),
        ({"replicaCount": "two"}, "replicaCount"),
        ({"replicaCount": 1.5}, "replicaCount"),
        ({"config": {"failureMode": "maybe"}}, "failureMode"),
        ({"config": {"logLevel": "verbose"}}, "logLevel"),
        ({"config": {"logFormat": "xml"}}, "logFormat"),
        ({"config": {"defaultLimit": "100"}}, "defaultLimit"),
        ({"config": {"defaultLimit": -1}}, "defaultLimit"),
        ({"config": {"eventsMax": 5}}, "eventsMax"),
        ({"config": {"redisTimeout": "fast"}}, "redisTimeout"),
        ({"config": {"thresholds": "80;100"}}, "thresholds"),
        ({"config": {"thresholds": [0, 100]}}, "thresholds"),
        ({"config": {"workerz": 2}}, "workerz"),
        ({"grpc": {"port": 70000}}, "port"),
        ({"grpc": {"port": "50051"}}, "port"),
        ({"admin": {"port": -1}}, "port"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"redis": {"url": "http://redis:6379"}}, "url"),
        ({"redis": {"enabled": "yes"}}, "enabled"),
        ({"redis": {"bundled": {"enabled": "yes"}}}, "enabled"),
        ({"redis": {"bundled": {"maxmemory": "lots"}}}, "maxmemory"),
        ({"redis": {"bundled": {"maxmemoryPercent": 95}}}, "maxmemoryPercent"),
        ({"redis": {"persistence": {"size": "1Gi"}}}, "persistence"),  # now redis.bundled's
        ({"webhook": {"url": "ftp://hooks.example.com/"}}, "url"),
        ({"webhook": {"secrets": "x"}}, "secrets"),
        ({"config": {"webhookTimeoutMs": 50}}, "webhookTimeoutMs"),
        ({"config": {"webhookMaxBackoffMs": "1m"}}, "webhookMaxBackoffMs"),
        ({"probes": {"readiness": {"type": "exec"}}}, "type"),
        ({"service": {"type": "ExternalName"}}, "type"),
        ({"identitySecret": {"asFile": "true"}}, "asFile"),
        ({"podDisruptionBudget": {"enabled": 1}}, "enabled"),
        ({"metrics": {"serviceMonitor": {"interval": "often"}}}, "interval"),
        ({"replicas": 3}, "replicas"),
        ({"config": {"maxConcurrentRpcs": 0}}, "maxConcurrentRpcs"),
        ({"config": {"maxStreams": 100001}}, "maxStreams"),
        ({"adminToken": {"asFile": "yes"}}, "asFile"),
        ({"tls": {"enabled": "true"}}, "enabled"),
        ({"tls": {"secretName": "Not_A_Secret"}}, "secretName"),
        ({"tls": {"clientCA": "ca.crt"}}, "clientCA"),
        ({"tls": {"certManager": {"duration": "90 days"}}}, "duration"),
        ({"tls": {"certManager": {"privateKey": {"algorithm": "DSA"}}}}, "algorithm"),
        ({"tls": {"certManager": {"privateKey": {"size": 1024}}}}, "size"),
        ({"tls": {"certManager": {"issuerRef": {"kind": ""}}}}, "kind"),
        ({"tls": {"admin": {"secretName": 7}}}, "secretName"),
    ],
)
def test_the_schema_refuses(bad: dict[str, Any], key: str) -> None:
    values = merge(case_values("default"), bad)
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError, match=key):
        chart.validate_schema(values)
    with pytest.raises(helm.HelmError):
        render(values)


def test_a_parent_chart_may_pass_global_values() -> None:
    values = merge(case_values("default"), {"global": {"imageRegistry": "r.example"}})
    with helm.Chart.load(CHART) as chart:
        chart.validate_schema(values)

"""A real Prometheus scraping a real sidecar process, with the alerting rules loaded."""

from __future__ import annotations

import time
import urllib.error
import uuid
from typing import Any

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from tests.support.observability_artifacts import dashboard, dashboard_exprs, rule_exprs
from tests.support.prometheus import PrometheusServer
from tests.support.sidecar_process import MetricsSidecar

CALLS = 37


async def test_prometheus_counts_every_activate_call(
    metrics_sidecar: MetricsSidecar, prometheus: PrometheusServer
) -> None:
    decisions = await metrics_sidecar.activate(f"obs-{uuid.uuid4().hex[:12]}", CALLS)
    assert [d.reason for d in decisions] == [pb.REASON_ADMITTED] * CALLS

    requests = 'sum(mac_requests_total{method="Activate",code="OK"})'
    assert prometheus.wait_for_value(requests, CALLS) == CALLS
    admitted = 'sum(mac_decisions_total{method="Activate",reason="ADMITTED"})'
    assert prometheus.wait_for_value(admitted, CALLS, timeout=5) == CALLS
    assert prometheus.query('up{job="mac-sidecar"}')[0]["value"][1] == "1"


def test_the_alerting_rules_evaluate_without_errors(prometheus: PrometheusServer) -> None:
    deadline = time.monotonic() + 30
    while True:
        rules: list[dict[str, Any]] = [
            rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]
        ]
        if all(rule["health"] != "unknown" for rule in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert len(rules) == len(rule_exprs())
    assert [(r["name"], r["health"], r.get("lastError", "")) for r in rules] == [
        (r["name"], "ok", "") for r in rules
    ]


def test_every_dashboard_query_is_valid_promql(prometheus: PrometheusServer) -> None:
    for expr in dashboard_exprs(dashboard()):
        try:
            prometheus.api("query", query=expr.replace("$__rate_interval", "1m"))
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{expr}: {exc.read().decode()}") from None

"""The alerting rules and dashboard under test, and the metric names they may use."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, cast

FILES = Path(__file__).resolve().parents[2] / "helm" / "mac-sidecar" / "files"
RULES = FILES / "prometheus-rules.yaml"
DASHBOARD = FILES / "grafana-dashboard.json"

# Every metric the sidecar exports, with its type.
METRICS = {
    "mac_requests_total": "counter",
    "mac_request_duration_seconds": "histogram",
    "mac_requests_in_flight": "gauge",
    "mac_decisions_total": "counter",
    "mac_shadow_denials_total": "counter",
    "mac_batch_size_contacts": "histogram",
    "mac_redis_round_trips_total": "counter",
    "mac_redis_round_trip_seconds": "histogram",
    "mac_redis_errors_total": "counter",
    "mac_redis_script_reloads_total": "counter",
    "mac_redis_up": "gauge",
    "mac_events_recorded_total": "counter",
    "mac_workspace_active_contacts": "gauge",
    "mac_workspace_limit_contacts": "gauge",
    "mac_workspace_utilisation_ratio": "gauge",
    "mac_workspace_forecast_active_contacts": "gauge",
    "mac_workspace_channel_active_contacts": "gauge",
    "mac_webhook_deliveries_total": "counter",
    "mac_webhook_failed_attempts_total": "counter",
    "mac_webhook_skipped_total": "counter",
    "mac_webhook_oldest_undelivered_seconds": "gauge",
    "mac_build_info": "gauge",
}
# The series names a query may select: histograms only through their samples.
SERIES = {
    f"{name}{suffix}"
    for name, kind in METRICS.items()
    for suffix in (("_bucket", "_sum", "_count") if kind == "histogram" else ("",))
}
_METRIC_TOKEN = re.compile(r"(?<![A-Za-z0-9_:])mac_[A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The ``mac_*`` names a PromQL expression mentions."""
    return set(_METRIC_TOKEN.findall(expr))


def rule_groups_yaml() -> str:
    """``spec`` of the PrometheusRule as a plain Prometheus rule file (``groups: ...``).

    The document's last top-level key is ``spec``; its block, dedented, is the rule file.
    """
    lines = RULES.read_text().splitlines()
    start = lines.index("spec:") + 1
    body = lines[start:]
    assert all(not line.strip() or line.startswith("  ") for line in body), "spec must be last"
    return "\n".join(line[2:] for line in body) + "\n"


def rule_exprs() -> list[str]:
    """Every ``expr`` of the rules, in order (inline or as a block scalar)."""
    lines = rule_groups_yaml().splitlines()
    exprs: list[str] = []
    for i, line in enumerate(lines):
        found = re.match(r"^( *)expr: *(.*)$", line)
        if found is None:
            continue
        indent, value = len(found[1]), found[2].strip()
        if value not in ("|", "|-", ">", ">-"):
            exprs.append(value)
            continue
        block: list[str] = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            block.append(following.strip())
        exprs.append(" ".join(block).strip())
    return exprs


def dashboard() -> dict[str, Any]:
    return cast(dict[str, Any], json.loads(DASHBOARD.read_text()))


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    found: list[dict[str, Any]] = []
    for panel in board["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_exprs(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in panels(board) for target in panel.get("targets", [])]

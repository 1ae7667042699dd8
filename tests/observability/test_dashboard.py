"""The Grafana dashboard: its identity, the panels it must have, and the metrics they query."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.observability_artifacts import (
    SERIES,
    dashboard,
    dashboard_exprs,
    metric_names,
    panels,
)

# title: (panel type, a metric series its queries must use)
REQUIRED = {
    "Request rate by method": ("timeseries", "mac_requests_total"),
    "Decisions by reason": ("timeseries", "mac_decisions_total"),
    "Latency p50 / p90 / p99 by method": ("timeseries", "mac_request_duration_seconds_bucket"),
    "Error ratio": ("timeseries", "mac_requests_total"),
    "Redis up by replica": ("timeseries", "mac_redis_up"),
    "Redis round-trip latency": ("timeseries", "mac_redis_round_trip_seconds_bucket"),
    "Redis errors by operation and kind": ("timeseries", "mac_redis_errors_total"),
    "Lua script reloads": ("timeseries", "mac_redis_script_reloads_total"),
    "Requests in flight": ("timeseries", "mac_requests_in_flight"),
    "Batch size (contacts per ActivateBatch)": ("timeseries", "mac_batch_size_contacts_bucket"),
    "Top workspaces by utilisation": ("bargauge", "mac_workspace_utilisation_ratio"),
}


@pytest.fixture
def board() -> dict[str, Any]:
    return dashboard()


def test_the_dashboard_has_its_uid_title_and_datasource_variable(board: dict[str, Any]) -> None:
    assert board["uid"] == "mac-sidecar"
    assert board["title"] == "MAC sidecar"
    assert board["schemaVersion"] >= 39
    variables = {var["name"]: var for var in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_the_dashboard_has_the_required_panels(board: dict[str, Any]) -> None:
    by_title = {panel["title"]: panel for panel in panels(board)}
    for title, (kind, series) in REQUIRED.items():
        assert title in by_title, title
        panel = by_title[title]
        assert panel["type"] == kind, title
        exprs = [target["expr"] for target in panel["targets"]]
        assert any(series in metric_names(expr) for expr in exprs), title
    top = by_title["Top workspaces by utilisation"]["targets"][0]["expr"]
    assert top.startswith("topk(10, ")
    latency = by_title["Latency p50 / p90 / p99 by method"]["targets"]
    assert [t["expr"].split(",")[0] for t in latency] == [
        f"histogram_quantile({q}" for q in ("0.5", "0.9", "0.99")
    ]


def test_every_panel_and_target_uses_the_datasource_variable(board: dict[str, Any]) -> None:
    queried = [panel for panel in panels(board) if panel["type"] != "row"]
    assert queried
    for panel in queried:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_panel_ids_and_ref_ids_are_unique(board: dict[str, Any]) -> None:
    ids = [panel["id"] for panel in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        refs = [target["refId"] for target in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]


def test_dashboard_queries_use_only_exported_metrics(board: dict[str, Any]) -> None:
    exprs = dashboard_exprs(board)
    assert exprs
    for expr in exprs:
        assert metric_names(expr), expr
        assert metric_names(expr) <= SERIES, expr

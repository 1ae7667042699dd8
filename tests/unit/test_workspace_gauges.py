"""The opt-in per-workspace gauges stay bounded and keep the most utilised workspaces."""

from __future__ import annotations

from prometheus_client import REGISTRY

from sidecar.metrics import WorkspaceGauges


def exported(name: str = "mac_workspace_utilisation_ratio") -> dict[str, float]:
    return {
        s.labels["workspace"]: s.value
        for metric in REGISTRY.collect()
        for s in metric.samples
        if s.name == name and s.labels.get("workspace", "").startswith("g-")
    }


def test_off_by_default_exports_nothing() -> None:
    WorkspaceGauges(0).observe("g-off", 5, 10)
    assert "g-off" not in exported()


def test_bounded_to_the_most_utilised() -> None:
    gauges = WorkspaceGauges(2)
    gauges.observe("g-a", 10, 100)
    gauges.observe("g-b", 50, 100)
    gauges.observe("g-c", 5, 100)  # less utilised than both: not exported
    assert exported() == {"g-a": 0.1, "g-b": 0.5}
    gauges.observe("g-d", 90, 100)  # evicts the least utilised
    assert exported() == {"g-b": 0.5, "g-d": 0.9}
    gauges.observe("g-b", 1, 100)  # a tracked workspace drops...
    gauges.observe("g-e", 20, 100)  # ...and is the one evicted next
    assert exported() == {"g-d": 0.9, "g-e": 0.2}
    assert exported("mac_workspace_limit_contacts") == {"g-d": 100.0, "g-e": 100.0}
    assert exported("mac_workspace_active_contacts") == {"g-d": 90.0, "g-e": 20.0}

"""The opt-in per-workspace gauges stay bounded and keep the most utilised workspaces."""

from __future__ import annotations

from prometheus_client import REGISTRY

from sidecar.metrics import CHANNELS_PER_WORKSPACE, WorkspaceGauges


def exported(name: str = "mac_workspace_utilisation_ratio") -> dict[str, float]:
    return {
        (
            s.labels["workspace"] + (f"/{s.labels['channel']}" if "channel" in s.labels else "")
        ): s.value
        for metric in REGISTRY.collect()
        for s in metric.samples
        if s.name == name and s.labels.get("workspace", "").startswith("g-")
    }


def test_off_by_default_exports_nothing() -> None:
    WorkspaceGauges(0).observe("g-off", 5, 10, 50)
    assert "g-off" not in exported()


def test_bounded_to_the_most_utilised() -> None:
    gauges = WorkspaceGauges(2)
    gauges.observe("g-a", 10, 100, 100)
    gauges.observe("g-b", 50, 100, 500)
    gauges.observe("g-c", 5, 100, 50)  # less utilised than both: not exported
    assert exported() == {"g-a": 0.1, "g-b": 0.5}
    gauges.observe("g-d", 90, 100, 900)  # evicts the least utilised
    assert exported() == {"g-b": 0.5, "g-d": 0.9}
    gauges.observe("g-b", 1, 100, 10)  # a tracked workspace drops...
    gauges.observe("g-e", 20, 100, 200)  # ...and is the one evicted next
    assert exported() == {"g-d": 0.9, "g-e": 0.2}
    assert exported("mac_workspace_limit_contacts") == {"g-d": 100.0, "g-e": 100.0}
    assert exported("mac_workspace_active_contacts") == {"g-d": 90.0, "g-e": 20.0}
    assert exported("mac_workspace_forecast_active_contacts") == {"g-d": 900.0, "g-e": 200.0}


def test_channels_follow_their_workspace_and_are_capped() -> None:
    gauges = WorkspaceGauges(1)
    gauges.observe("g-ch", 3, 10, 30, [("sms", 2), ("whatsapp", 1)])
    gauges.observe("g-ch", 4, 10, 40, [("sms", 3)])
    assert exported("mac_workspace_channel_active_contacts") == {
        "g-ch/sms": 3.0,
        "g-ch/whatsapp": 1.0,
    }
    many = [(f"c{n}", 1) for n in range(CHANNELS_PER_WORKSPACE + 5)]
    gauges.observe("g-ch", 9, 10, 90, many)
    assert len(exported("mac_workspace_channel_active_contacts")) == CHANNELS_PER_WORKSPACE
    gauges.observe("g-other", 10, 10, 100)  # more utilised: evicts g-ch and its channels
    assert exported("mac_workspace_channel_active_contacts") == {}

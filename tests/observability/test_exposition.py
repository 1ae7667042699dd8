"""The sidecar's /metrics text passes `promtool check metrics` and has the expected types."""

from __future__ import annotations

import re
import uuid

from tests.support.observability_artifacts import METRICS
from tests.support.prometheus import promtool
from tests.support.sidecar_process import MetricsSidecar


async def test_promtool_finds_no_problem_in_the_exposition(
    metrics_sidecar: MetricsSidecar,
) -> None:
    await metrics_sidecar.activate(f"obs-{uuid.uuid4().hex[:12]}", 3)
    text = metrics_sidecar.scrape()
    assert "mac_requests_total{" in text

    result = promtool("check", "metrics", stdin=text)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


async def test_exported_metrics_have_the_types_the_rules_and_dashboard_assume(
    metrics_sidecar: MetricsSidecar,
) -> None:
    await metrics_sidecar.activate(f"obs-{uuid.uuid4().hex[:12]}", 1)
    types = dict(re.findall(r"^# TYPE (mac_\w+) (\w+)$", metrics_sidecar.scrape(), re.MULTILINE))
    assert {"mac_requests_total", "mac_decisions_total"} <= types.keys()
    assert {name: types[name] for name in METRICS if name in types} == {
        name: kind for name, kind in METRICS.items() if name in types
    }

"""The alerting rules: valid for promtool, firing as their unit tests expect, on known metrics."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from tests.support.observability_artifacts import (
    RULES,
    SERIES,
    metric_names,
    rule_exprs,
    rule_groups_yaml,
)
from tests.support.prometheus import promtool

UNIT_TESTS = Path(__file__).with_name("rules_test.yaml")


def alert_blocks() -> dict[str, str]:
    """Each alerting rule's text, by alert name."""
    parts = re.split(r"^ +- alert: ", rule_groups_yaml(), flags=re.MULTILINE)[1:]
    return {part.split("\n", 1)[0].strip(): part for part in parts}


def test_the_rules_file_is_one_prometheus_rule_document() -> None:
    text = RULES.read_text()
    assert "\n---" not in text
    assert "\napiVersion: monitoring.coreos.com/v1\n" in text
    assert "\nkind: PrometheusRule\n" in text
    assert "\nmetadata:\n  name: mac-sidecar\n" in text
    assert rule_groups_yaml().startswith("groups:\n")


def test_promtool_check_rules_accepts_every_rule(rule_file: Path) -> None:
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    # promtool's count of rules agrees with what the other tests read from the file
    assert f"SUCCESS: {len(rule_exprs())} rules found" in result.stdout
    assert len(alert_blocks()) == len(rule_exprs())


def test_every_alert_fires_in_its_unit_test_and_none_when_healthy(rule_file: Path) -> None:
    shutil.copy(UNIT_TESTS, rule_file.parent / UNIT_TESTS.name)
    result = promtool("test", "rules", str(rule_file.parent / UNIT_TESTS.name))
    assert result.returncode == 0, result.stdout + result.stderr
    text = UNIT_TESTS.read_text()
    firing = set(re.findall(r"alertname: (\w+)\n +exp_alerts:\n", text))
    healthy = text.split("- name: a healthy fleet raises no alert\n")[1]
    silent = set(re.findall(r"alertname: (\w+)\n +exp_alerts: \[\]\n", healthy))
    assert firing == set(alert_blocks())
    assert silent == set(alert_blocks())


def test_every_alert_has_a_severity_a_summary_and_a_runbook_hint() -> None:
    for name, block in alert_blocks().items():
        assert re.search(r"\n +severity: (warning|critical)\n", block), name
        assert re.search(r"\n +summary: ", block), name
        assert re.search(r"\n +description: ", block), name
        assert "Runbook: " in block, name


def test_rule_expressions_use_only_exported_metrics() -> None:
    exprs = rule_exprs()
    assert exprs
    for expr in exprs:
        assert metric_names(expr), expr
        assert metric_names(expr) <= SERIES, expr


def test_only_the_workspace_gauges_are_split_by_workspace() -> None:
    for expr in rule_exprs():
        if "workspace" in expr:
            assert all(name.startswith("mac_workspace_") for name in metric_names(expr)), expr

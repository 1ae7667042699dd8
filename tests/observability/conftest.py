"""Fixtures of the observability tests: a sidecar process serving metrics, and Prometheus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.observability_artifacts import rule_groups_yaml
from tests.support.prometheus import PrometheusServer
from tests.support.redis_servers import RedisServer, free_port
from tests.support.sidecar_process import MetricsSidecar, SidecarProcess


@pytest.fixture(scope="module")
def metrics_sidecar(redis_server: RedisServer) -> Iterator[MetricsSidecar]:
    metrics_addr = f"127.0.0.1:{free_port()}"
    process = SidecarProcess(redis_server.url, MAC_METRICS_ADDR=metrics_addr)
    process.start()
    try:
        yield MetricsSidecar(process, metrics_addr)
    finally:
        process.stop()


@pytest.fixture
def rule_file(tmp_path: Path) -> Path:
    """The PrometheusRule's spec as a plain rule file, beside where rules_test.yaml goes."""
    path = tmp_path / "mac-sidecar-rules.yaml"
    path.write_text(rule_groups_yaml())
    return path


@pytest.fixture(scope="module")
def prometheus(
    metrics_sidecar: MetricsSidecar, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusServer]:
    """Prometheus scraping ``metrics_sidecar`` and evaluating the alerting rules every second."""
    rules = tmp_path_factory.mktemp("rules") / "mac-sidecar-rules.yaml"
    rules.write_text(rule_groups_yaml())
    server = PrometheusServer([metrics_sidecar.metrics_addr], rule_files=[rules])
    server.start()
    try:
        yield server
    finally:
        server.close()

"""Fixtures of the observability tests: a sidecar process serving metrics, and Prometheus."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.observability.artifacts import rule_groups_yaml
from tests.prometheus import PrometheusServer
from tests.redis_servers import RedisServer, free_port
from tests.sidecar_process import SidecarProcess


@dataclass
class MetricsSidecar:
    """A sidecar process and the loopback address of its ``/metrics``."""

    process: SidecarProcess
    metrics_addr: str

    def scrape(self) -> str:
        """The text exposition the sidecar serves now."""
        with urllib.request.urlopen(f"http://{self.metrics_addr}/metrics", timeout=5) as reply:
            return bytes(reply.read()).decode()

    async def activate(self, workspace: str, count: int) -> list[pb.Decision]:
        """Activate ``count`` new contacts of ``workspace``, one call each."""
        async with grpc.aio.insecure_channel(f"127.0.0.1:{self.process.port}") as channel:
            stub = pb_grpc.EnforcerStub(channel)
            return [
                await stub.Activate(
                    pb.ActivateRequest(
                        workspace_id=workspace, contact=pb.Contact(email=f"c{n}@example.com")
                    )
                )
                for n in range(count)
            ]


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

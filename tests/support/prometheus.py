"""A real Prometheus server and promtool for the tests, on free loopback ports."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest

from tests.support.redis_servers import free_port

INSTALL_HINT = "install the Debian package `prometheus` (apt-get install prometheus)"


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; fails the test when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed: {INSTALL_HINT}", pytrace=False)
    return path


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``promtool`` with ``args``; the result carries its exit code and output."""
    return subprocess.run(
        [binary("promtool"), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


class PrometheusServer:
    """A ``prometheus`` process scraping ``targets`` (``host:port``) every second.

    :param targets: the loopback addresses serving ``/metrics``.
    :param rule_files: rule files to load and evaluate every second.
    """

    def __init__(self, targets: list[str], rule_files: list[Path] | None = None) -> None:
        self._binary = binary("prometheus")
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="mac-prometheus-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._log = self._dir / "prometheus.log"
        config = {
            "global": {
                "scrape_interval": "1s",
                "scrape_timeout": "1s",
                "evaluation_interval": "1s",
            },
            "rule_files": [str(path) for path in rule_files or []],
            "scrape_configs": [
                {"job_name": "mac-sidecar", "static_configs": [{"targets": targets}]}
            ],
        }
        # JSON is YAML: no YAML library needed.
        (self._dir / "prometheus.yml").write_text(json.dumps(config, indent=2))

    def start(self, timeout: float = 30) -> None:
        """Start and wait until Prometheus reports ready."""
        with self._log.open("wb") as log:
            self._proc = subprocess.Popen(
                [
                    self._binary,
                    f"--config.file={self._dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self._dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with self._get("/-/ready", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            if self._proc.poll() is not None or time.monotonic() > deadline:
                log_text = self._log.read_text(errors="replace")
                self.close()
                raise RuntimeError(f"prometheus did not start on {self.port}:\n{log_text}")
            time.sleep(0.1)

    def _get(self, path: str, timeout: float) -> http.client.HTTPResponse:
        reply: http.client.HTTPResponse = urllib.request.urlopen(
            f"http://127.0.0.1:{self.port}{path}", timeout=timeout
        )
        return reply

    def api(self, path: str, **params: str) -> Any:
        """The ``data`` of a successful HTTP API call (``/api/v1/<path>``)."""
        query = urllib.parse.urlencode(params)
        with self._get(f"/api/v1/{path}?{query}", timeout=5) as reply:
            body = cast(dict[str, Any], json.load(reply))
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now."""
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", data
        return cast(list[dict[str, Any]], data["result"])

    def wait_for_value(self, expr: str, expected: float, timeout: float = 30) -> float | None:
        """Poll ``expr`` (one series) until it equals ``expected``; return the last value."""
        deadline = time.monotonic() + timeout
        value: float | None = None
        while True:
            result = self.query(expr)
            value = float(result[0]["value"][1]) if len(result) == 1 else None
            if value == expected or time.monotonic() > deadline:
                return value
            time.sleep(0.25)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

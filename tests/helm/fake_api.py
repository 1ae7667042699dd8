"""A fake Kubernetes API server on loopback that serves Secrets, for Helm's `lookup`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import helm_python as helm

from tests.helm.chart import CHART, NAMESPACE, RELEASE, Obj

_DISCOVERY: dict[str, Obj] = {
    "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
    "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []},
    "/api/v1": {
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            {
                "name": "secrets",
                "singularName": "secret",
                "namespaced": True,
                "kind": "Secret",
                "verbs": ["get", "list"],
            }
        ],
    },
}


class FakeCluster:
    """The Secrets a fake API server holds; ``render`` renders the chart against them."""

    def __init__(self, secrets: list[Obj]) -> None:
        self.secrets = {
            f"/api/v1/namespaces/{s['metadata']['namespace']}/secrets/{s['metadata']['name']}": s
            for s in secrets
        }
        self.requests: list[str] = []
        self.kubeconfig = ""

    def answer(self, path: str) -> tuple[int, Obj]:
        """The status and body of a GET of ``path``."""
        self.requests.append(path)
        found = _DISCOVERY.get(path) or self.secrets.get(path)
        if found is not None:
            return 200, found
        status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound"}
        return 404, {**status, "code": 404}

    def render(self, values: dict[str, Any], **options: Any) -> dict[str, str]:
        """The chart rendered as an install or upgrade against this cluster."""
        with (
            helm.Config(kubeconfig_content=self.kubeconfig, namespace=NAMESPACE) as config,
            helm.Chart.load(CHART) as chart,
        ):
            return config.render(chart, values, name=RELEASE, namespace=NAMESPACE, **options)


@contextmanager
def fake_cluster(secrets: list[Obj]) -> Iterator[FakeCluster]:
    """A fake API server on 127.0.0.1 holding ``secrets``, for as long as the block runs."""
    cluster = FakeCluster(secrets)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = cluster.answer(self.path.split("?")[0])
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    cluster.kubeconfig = json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "fake", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
            ],
            "users": [{"name": "fake", "user": {"token": "fake"}}],
            "contexts": [
                {"name": "fake", "context": {"cluster": "fake", "user": "fake"}},
            ],
            "current-context": "fake",
        }
    )
    try:
        yield cluster
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

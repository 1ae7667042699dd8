"""The HTTP endpoints beside the gRPC ports: ``/metrics``, ``/livez`` and ``/readyz``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from sidecar.domain.errors import ConfigError
from sidecar.settings import split_addr


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes are not worth a log line each."""


class ProbeServer:
    """Serves metrics and the two probes from a thread of its own.

    :param addr: ``host:port``.
    :param registry: the registry ``/metrics`` exposes.
    :param alive: whether the process still does its work (``/livez``: 200 or 503).
    :param ready: whether it can serve calls now, i.e. Redis answers (``/readyz``).
    """

    def __init__(
        self,
        addr: str,
        registry: CollectorRegistry,
        alive: Callable[[], bool],
        ready: Callable[[], bool],
    ) -> None:
        self._addr = addr
        self._metrics = make_wsgi_app(registry)
        self._alive = alive
        self._ready = ready
        self._server: ThreadingWSGIServer | None = None
        self.port = 0

    def _app(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/livez", "/readyz"):
            ok = self._alive() if path == "/livez" else self._ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n" if ok else b"not ready\n" if path == "/readyz" else b"stuck\n"]
        if path != "/metrics":
            # a probe or scrape with a typo must fail, not read the metrics page as "ok"
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: try /metrics, /livez or /readyz\n"]
        result: Iterable[bytes] = self._metrics(environ, start_response)
        return result

    def start(self) -> int:
        """Listen and serve in a daemon thread; return the port."""
        host, port = split_addr(self._addr)
        try:
            self._server = make_server(
                host, port, self._app, ThreadingWSGIServer, handler_class=_QuietHandler
            )
        except OSError as exc:
            raise ConfigError(f"cannot listen on {self._addr}: {exc.strerror}") from exc
        self.port = self._server.server_port
        threading.Thread(target=self._server.serve_forever, name="mac-probes", daemon=True).start()
        return self.port

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

"""``sidecar serve --workers N``: N sidecar processes sharing the same ports, one metrics
endpoint adding their numbers up.

The kernel spreads connections over the processes (SO_REUSEPORT); every fact lives in Redis,
so the processes need nothing from each other. prometheus-client's multiprocess mode keeps each
process's metrics in a shared directory, and this supervising process serves their sum on
``MAC_METRICS_ADDR`` along with ``/livez`` and ``/readyz``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from types import FrameType

from prometheus_client import CollectorRegistry, multiprocess

from sidecar.domain.errors import ConfigError
from sidecar.logs import get_logger
from sidecar.server.probes import ProbeServer
from sidecar.settings import Settings, split_addr

log = get_logger("sidecar.server.workers")
WORKER_ENV = "MAC_WORKER_OF"
MAX_RESTARTS_PER_MINUTE = 5


def _environment(settings: Settings, metrics_dir: str) -> dict[str, str]:
    """The workers' environment: every setting (flags included) as its MAC_* variable."""
    env = dict(os.environ)
    for field in dataclasses.fields(settings):
        env[field.metadata["env"]] = str(getattr(settings, field.name))
    env.update(
        {
            "MAC_WORKERS": "1",
            "MAC_METRICS_ADDR": "",
            "PROMETHEUS_MULTIPROC_DIR": metrics_dir,
            WORKER_ENV: str(os.getpid()),
        }
    )
    return env


def _mark_dead(pid: int, path: str) -> None:
    # drops the dead process's live gauges (mac_redis_up, in-flight) from the sum
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class Supervisor:
    """Starts the workers, restarts one that dies, stops them all on SIGTERM or SIGINT."""

    def __init__(self, settings: Settings) -> None:
        for name, addr in (
            ("MAC_GRPC_ADDR", settings.grpc_addr),
            ("MAC_ADMIN_ADDR", settings.admin_addr),
        ):
            if addr and split_addr(addr)[1] == 0:
                raise ConfigError(f"{name} needs a fixed port with more than one worker")
        self.settings = settings
        self._dir = tempfile.mkdtemp(prefix="mac-sidecar-metrics-")
        self._env = _environment(settings, self._dir)
        self._workers: list[subprocess.Popen[bytes]] = []
        self._restarts: list[float] = []
        self._stopping = False
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=self._dir)  # type: ignore[no-untyped-call]

    def _spawn(self) -> subprocess.Popen[bytes]:
        worker = subprocess.Popen([sys.executable, "-m", "sidecar", "serve"], env=self._env)
        log.info("worker started", pid=worker.pid)
        return worker

    def alive(self) -> bool:
        """Every worker runs."""
        return not self._stopping and all(w.poll() is None for w in self._workers)

    def ready(self) -> bool:
        """Every worker runs and every one reaches Redis (``mac_redis_up``, least of all)."""
        if not self.alive():
            return False
        for metric in self.registry.collect():
            if metric.name == "mac_redis_up":
                return bool(metric.samples) and all(s.value == 1 for s in metric.samples)
        return False

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        """Supervise until told to stop; return the exit status."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        probes = None
        try:
            self._workers = [self._spawn() for _ in range(self.settings.workers)]
            if self.settings.metrics_addr:
                probes = ProbeServer(
                    self.settings.metrics_addr, self.registry, self.alive, self.ready
                )
                probes.start()
            log.info("supervising", workers=self.settings.workers, grpc=self.settings.grpc_addr)
            while not self._stopping:
                time.sleep(0.2)
                if self._replace_dead() is False:
                    return 1
            return 0
        finally:
            self._stopping = True
            self._shutdown()
            if probes is not None:
                probes.stop()
            shutil.rmtree(self._dir, ignore_errors=True)

    def _replace_dead(self) -> bool:
        for i, worker in enumerate(self._workers):
            code = worker.poll()
            if code is None or self._stopping:
                continue
            _mark_dead(worker.pid, self._dir)
            now = time.monotonic()
            self._restarts = [t for t in self._restarts if now - t < 60] + [now]
            if len(self._restarts) > MAX_RESTARTS_PER_MINUTE:
                log.error("workers keep dying; giving up", exit_code=code)
                return False
            log.warning("worker died; starting another", pid=worker.pid, exit_code=code)
            self._workers[i] = self._spawn()
        return True

    def _shutdown(self) -> None:
        for worker in self._workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + 5
        for worker in self._workers:
            try:
                worker.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
            _mark_dead(worker.pid, self._dir)

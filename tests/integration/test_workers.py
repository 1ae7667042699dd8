"""The supervisor of ``sidecar serve --workers N`` and its workers live and die together, as an
operator sees it from outside: real processes, fixed loopback ports, their JSON log lines."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import grpc
import pytest
import redis

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.redis_servers import RedisServer, free_port
from tests.support.sidecar_process import SidecarProcess

Line = dict[str, Any]


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie nobody reaped yet does not)."""
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False
    try:  # pragma: no cover - no /proc
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def port_free(port: int) -> bool:
    """Whether 127.0.0.1:``port`` can be bound by a process that shares it with nobody."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; return the seconds it took."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.01)
    return time.monotonic() - start


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback http
            code: int = reply.status
            return code
    except urllib.error.HTTPError as exc:
        return exc.code


def activate(port: int, contact: str) -> pb.Decision:
    """One Activate call on a new connection (the kernel picks the worker)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        decision: pb.Decision = pb_grpc.EnforcerStub(channel).Activate(
            pb.ActivateRequest(workspace_id="w", contact=pb.Contact(id=contact)), timeout=5
        )
        return decision


def json_objects(text: str) -> Iterator[Line]:
    """The JSON objects in a line of stderr: two processes logging at once may write theirs
    on one line, each one whole (its newline comes in a write of its own)."""
    decoder = json.JSONDecoder()
    at = text.find("{")
    while at != -1:
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            end = at + 1
        else:
            if isinstance(value, dict):
                yield value
        at = text.find("{", end)


def when(line: Line) -> float:
    return datetime.fromisoformat(line["timestamp"]).timestamp()


class Supervised:
    """``python -m sidecar serve`` with ``MAC_WORKERS=2``, its log lines read as they come."""

    def __init__(self, redis_url: str, **env: str) -> None:
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.env = SidecarProcess(redis_url).env
        self.env.update(
            MAC_GRPC_ADDR=f"127.0.0.1:{self.grpc_port}",
            MAC_METRICS_ADDR=f"127.0.0.1:{self.metrics_port}",
            MAC_WORKERS="2",
            MAC_SHUTDOWN_GRACE="1",
            MAC_HEALTH_INTERVAL="0.1",
            **env,
        )
        self.lines: list[Line] = []
        self._changed = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:  # the workers write here too, even once it is gone
            parsed = list(json_objects(raw))
            with self._changed:
                self.lines.extend(parsed)
                self._changed.notify_all()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.metrics_port}{path}"

    def wait_for(self, event: str, after: int = 0, timeout: float = 10, **fields: Any) -> int:
        """The index of the first line from ``after`` on with ``event`` and ``fields``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for i in range(after, len(self.lines)):
                    line = self.lines[i]
                    if line.get("event") == event and fields.items() <= line.items():
                        return i
                left = deadline - time.monotonic()
                assert left > 0, f"no {event!r} {fields} in time:\n{self.lines}"
                self._changed.wait(left)

    def wait_count(self, event: str, count: int, timeout: float = 10) -> None:
        """Wait until ``count`` lines with ``event`` came (the reader may lag the processes)."""
        seen = -1
        for _ in range(count):
            seen = self.wait_for(event, seen + 1, timeout)

    def events(self, event: str) -> list[Line]:
        with self._changed:
            return [line for line in self.lines if line.get("event") == event]

    def wait_ready(self, timeout: float = 20) -> None:
        def ready() -> bool:
            assert self.proc.poll() is None, f"the supervisor exited:\n{self.lines}"
            try:
                return status(self.url("/readyz")) == 200
            except OSError:
                return False

        wait_until(ready, timeout, "the workers never became ready")

    def workers(self) -> list[int]:
        """The pids of the workers started so far."""
        return [line["pid"] for line in self.events("worker started")]

    def terminate(self, timeout: float = 10) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        """Leave nothing running, whatever the test did."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.workers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._reader.join(5)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


@pytest.fixture
def supervise(
    redis_server: RedisServer, redis_db: redis.Redis, engine_env: str
) -> Iterator[Callable[..., Supervised]]:
    started: list[Supervised] = []

    def start(**env: str) -> Supervised:
        started.append(Supervised(redis_server.url, **env))
        return started[-1]

    yield start
    for supervised in started:
        supervised.close()


def test_killing_the_supervisor_stops_its_workers_and_frees_the_port(
    supervise: Callable[..., Supervised],
) -> None:
    sup = supervise()
    sup.wait_ready()
    workers = sup.workers()
    assert len(workers) == 2
    assert all(alive(pid) for pid in workers)

    sup.proc.kill()
    sup.proc.wait()
    took = wait_until(
        lambda: not any(alive(pid) for pid in workers), 5, "the workers outlived the supervisor"
    )

    assert took < 3, took  # about 0.1 s: the stop of an idle worker
    wait_until(lambda: port_free(sup.grpc_port), 5, "the gRPC port stayed taken")
    assert port_free(sup.metrics_port)
    # the graceful way (SIGTERM from the kernel, or the pipe's end): in-flight calls finish
    sup.wait_count("shutting down", 2)


def test_a_second_sidecar_on_a_busy_port_refuses_to_start(
    supervise: Callable[..., Supervised],
) -> None:
    admin_port = free_port()
    first = supervise(MAC_ADMIN_ADDR=f"127.0.0.1:{admin_port}")
    first.wait_ready()
    other = f"127.0.0.1:{free_port()}"
    grpc_addr, admin_addr = f"127.0.0.1:{first.grpc_port}", f"127.0.0.1:{admin_port}"
    metrics_addr = f"127.0.0.1:{first.metrics_port}"
    attempts = [  # (the second sidecar's settings, the setting that collides)
        ({"MAC_GRPC_ADDR": grpc_addr, "MAC_ADMIN_ADDR": ""}, "MAC_GRPC_ADDR"),
        ({"MAC_GRPC_ADDR": other, "MAC_ADMIN_ADDR": admin_addr}, "MAC_ADMIN_ADDR"),
        (
            {"MAC_GRPC_ADDR": other, "MAC_ADMIN_ADDR": "", "MAC_METRICS_ADDR": metrics_addr},
            "MAC_METRICS_ADDR",
        ),
        ({"MAC_GRPC_ADDR": grpc_addr, "MAC_ADMIN_ADDR": "", "MAC_WORKERS": "1"}, "MAC_GRPC_ADDR"),
    ]
    for changes, setting in attempts:
        env = {**first.env, "MAC_METRICS_ADDR": "", **changes}
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "sidecar", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=15,
        )
        took = time.monotonic() - started
        assert second.returncode == 2, second.stderr
        addr = env[setting]
        assert f"sidecar: {setting} {addr} is in use (another sidecar?)\n" in second.stderr
        assert "worker started" not in second.stderr
        assert "listening" not in second.stderr
        assert took < 10, took  # about 0.4 s: the start of Python

    assert first.proc.poll() is None
    assert activate(first.grpc_port, "after").allowed
    assert status(first.url("/readyz")) == 200
    assert first.events("worker died") == []
    assert first.terminate() == 0


def test_a_worker_that_keeps_dying_is_restarted_after_a_backoff_while_the_other_serves(
    supervise: Callable[..., Supervised],
) -> None:
    sup = supervise(MAC_WORKER_RESTART_DELAY="0.2", MAC_WORKER_RESTART_DELAY_MAX="0.8")
    sup.wait_ready()
    victim, survivor = sup.workers()
    delays: list[float] = []
    seen = 0
    for n in range(7):
        os.kill(victim, signal.SIGKILL)
        seen = sup.wait_for("worker died", seen, pid=victim)
        death = sup.lines[seen]
        assert death["exit_code"] == -signal.SIGKILL
        assert death["signal"] == "SIGKILL"
        delays.append(death["restart_in_seconds"])
        # the other worker serves throughout; the supervisor goes on
        assert activate(sup.grpc_port, f"between-{n}").allowed
        assert sup.proc.poll() is None
        assert alive(survivor)
        if death["restart_in_seconds"] >= 0.4:
            assert status(sup.url("/readyz")) == 503  # fewer workers than configured
            assert status(sup.url("/livez")) == 200  # but some
        seen = sup.wait_for("worker started", seen)
        restart = sup.lines[seen]
        assert when(restart) - when(death) >= death["restart_in_seconds"] - 0.01
        victim = restart["pid"]

    assert delays == [0, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8]
    # the last one came back after its backoff, and serves beside the survivor
    sup.wait_ready(10)
    assert alive(victim)
    assert alive(survivor)
    assert [line["pid"] for line in sup.events("worker died")].count(survivor) == 0
    for n in range(10):
        assert activate(sup.grpc_port, f"after-{n}").allowed

    # SIGTERM while a worker waits for its restart: everything stops, nothing starts again
    os.kill(victim, signal.SIGKILL)
    seen = sup.wait_for("worker died", seen, pid=victim)
    assert sup.lines[seen]["restart_in_seconds"] == 0.8
    assert sup.terminate() == 0
    assert sup.workers()[-1] == victim
    assert not alive(survivor)


def test_sigterm_stops_the_supervisor_and_its_workers(
    supervise: Callable[..., Supervised],
) -> None:
    sup = supervise()
    sup.wait_ready()
    workers = sup.workers()
    assert activate(sup.grpc_port, "one").allowed

    started = time.monotonic()
    assert sup.terminate() == 0
    took = time.monotonic() - started

    assert took < 1 + 2, took  # MAC_SHUTDOWN_GRACE, and no call in flight
    assert not any(alive(pid) for pid in workers)
    sup.wait_count("shutting down", 2)
    assert sup.events("worker died") == []
    assert port_free(sup.grpc_port)
    assert port_free(sup.metrics_port)


def test_the_port_stays_the_supervisors_while_all_its_workers_wait_to_restart(
    supervise: Callable[..., Supervised],
) -> None:
    sup = supervise(MAC_WORKER_RESTART_DELAY="5", MAC_WORKER_RESTART_DELAY_MAX="5")
    sup.wait_ready()
    for wave in (1, 2):  # the first deaths restart at once, the second ones wait 5 s
        sup.wait_count("worker started", 2 * wave)
        for pid in sup.workers()[-2:]:
            os.kill(pid, signal.SIGKILL)
            sup.wait_for("worker died", pid=pid)
    assert {line["restart_in_seconds"] for line in sup.events("worker died")[-2:]} == {5}
    assert sup.proc.poll() is None
    assert status(sup.url("/livez")) == 503  # no worker runs: a restart of the pod is due
    assert status(sup.url("/readyz")) == 503

    single = subprocess.run(
        [sys.executable, "-m", "sidecar", "serve"],
        env={**sup.env, "MAC_WORKERS": "1", "MAC_METRICS_ADDR": ""},
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert single.returncode == 2, single.stderr
    assert f"MAC_GRPC_ADDR 127.0.0.1:{sup.grpc_port} is in use" in single.stderr

    assert sup.terminate() == 0
    assert len(sup.workers()) == 4

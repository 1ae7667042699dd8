"""The benchmark's server processes (the real sidecar and the echo servers, on either engine),
started and stopped, and what ``/proc`` tells of them."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench.echo import METHOD
from tests.support.redis_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-identity-secret-0123456789abcdef"
START_SECONDS = 20.0


class Server:
    """A server subprocess listening on 127.0.0.1:``port``, asked to serve with ``engine``;
    its output goes to a log file."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], port: int, engine: str
    ) -> None:
        self.name = name
        self.engine = engine
        self.served = engine  # the engine it serves with, once it is ready
        self.port = port
        self.addr = f"127.0.0.1:{port}"
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, probe: Callable[[grpc.Channel], bool]) -> None:
        """Call ``probe`` until it answers True; fail if the process exits or time runs out."""
        deadline = time.monotonic() + START_SECONDS
        with grpc.insecure_channel(self.addr) as channel:
            while True:
                try:
                    if probe(channel):
                        self.served = serving_engine([self.proc.pid, *children(self.proc.pid)])
                        return
                except grpc.RpcError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.proc.returncode}: {self.log()}"
                    )
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not become ready on {self.addr}")
                time.sleep(0.05)

    def log(self) -> str:
        """Everything the process wrote so far."""
        return Path(self._log.name).read_text(errors="replace").strip()

    def stop(self) -> int | None:
        """Terminate the process (SIGTERM, then SIGKILL); return its exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode

    def close(self) -> None:
        self.stop()
        self._log.close()


def _serving(channel: grpc.Channel) -> bool:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _echoes(channel: grpc.Channel) -> bool:
    echo: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
    return echo(b"ping", timeout=1) == b"ping"


def start_sidecar(redis_url: str, engine: str = "grpcio", **settings: str) -> Server:
    """The real sidecar, ``python -m sidecar serve``, asked to serve with ``engine``
    (``MAC_GRPC_ENGINE``), once its health check says SERVING; ``settings`` are more
    ``MAC_*`` variables."""
    port = free_port()
    env = {
        **os.environ,
        "MAC_REDIS_URL": redis_url,
        "MAC_GRPC_ADDR": f"127.0.0.1:{port}",
        "MAC_METRICS_ADDR": "",
        "MAC_IDENTITY_SECRET": SECRET,
        "MAC_DEFAULT_LIMIT": "10000000",
        "MAC_LOG_LEVEL": "warning",
        "MAC_LOG_FORMAT": "json",
        "MAC_GRPC_ENGINE": engine,
        **settings,
    }
    argv = [sys.executable, "-m", "sidecar", "serve"]
    server = Server(f"sidecar ({engine})", argv, env, port, engine)
    try:
        server.wait_ready(_serving)
    except BaseException:
        server.close()
        raise
    return server


def start_echo(engine: str = "grpcio") -> Server:
    """The bare echo server on ``engine``, ``python -m bench.echo``, once it echoes."""
    port = free_port()
    argv = [sys.executable, "-m", "bench.echo", "--port", str(port), "--engine", engine]
    server = Server(f"echo ({engine})", argv, dict(os.environ), port, engine)
    try:
        server.wait_ready(_echoes)
    except BaseException:
        server.close()
        raise
    return server


def socket_path() -> str:
    """A fresh path for the sidecar's Unix domain socket (MAC_GRPC_UDS), short enough for
    one; the sidecar creates the socket and removes it when it stops."""
    return str(Path(tempfile.mkdtemp(prefix="bench-uds-")) / "grpc.sock")


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU seconds a process used so far (Linux only; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def host_cpu() -> tuple[int, int] | None:
    """The machine's CPU time stolen by its hypervisor and its CPU time in all, in clock
    ticks so far (Linux only; None elsewhere): a virtual machine's neighbours show here."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal
    ticks = [int(v) for v in fields]
    return ticks[7], sum(ticks)


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux only; none elsewhere)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in text.split()]


def _thread_names(pid: int) -> list[str]:
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return []
    names = []
    for task in tasks:
        try:
            names.append(Path(f"/proc/{pid}/task/{task}/comm").read_text().strip())
        except OSError:  # the thread ended meanwhile
            continue
    return names


def serving_engine(pids: list[int]) -> str:
    """``native`` when one of the processes runs the native engine's I/O threads (named
    ``grpc-native-io``), else ``grpcio``: what a server serves with, whatever it was asked."""
    for pid in pids:
        if any(name.startswith("grpc-native") for name in _thread_names(pid)):
            return "native"
    return "grpcio"


@dataclass(frozen=True)
class Footprint:
    """What a process holds at one moment: resident memory, threads, open descriptors."""

    rss_bytes: int
    threads: int
    fds: int


def footprint(pid: int) -> Footprint | None:
    """The process's footprint now, from ``/proc`` (Linux only; None elsewhere, or once the
    process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    rss_kib = int(fields["VmRSS"].split()[0])
    return Footprint(rss_bytes=rss_kib * 1024, threads=int(fields["Threads"]), fds=fds)

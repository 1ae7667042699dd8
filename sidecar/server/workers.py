"""``sidecar serve --workers N``: N sidecar processes sharing the same ports, one metrics
endpoint adding their numbers up.

The kernel spreads connections over the processes (SO_REUSEPORT); every fact lives in Redis,
so the processes need nothing from each other. prometheus-client's multiprocess mode keeps each
process's metrics in a shared directory, and this supervising process serves their sum on
``MAC_METRICS_ADDR`` along with ``/livez`` and ``/readyz``.

The supervisor and its workers live and die together:

- before starting any worker the supervisor makes sure the ports are free (a bind without
  SO_REUSEPORT fails on a port other processes share), then keeps a bound, never listening
  SO_REUSEPORT socket on each gRPC port: no connection ever reaches it, but it keeps a second
  sidecar off the port for as long as the supervisor lives, even while its workers restart;
- a worker stops gracefully (SIGTERM: in-flight calls finish) as soon as its supervisor is gone,
  however it went (``kill -9`` included): on Linux the kernel sends the SIGTERM
  (``PR_SET_PDEATHSIG``), everywhere the worker also watches a pipe whose only write end the
  supervisor holds (end of file: the supervisor is gone);
- a worker that dies is started again, at once the first time, then after a delay doubling from
  one second to a minute while it keeps dying (the count resets once a worker stayed up a
  minute). The other workers keep serving meanwhile; the supervisor stops only on SIGTERM or
  SIGINT, never because workers die.
"""

from __future__ import annotations

import ctypes
import dataclasses
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from types import FrameType

from prometheus_client import CollectorRegistry, multiprocess

from sidecar.domain.errors import ConfigError
from sidecar.logs import get_logger
from sidecar.server.probes import ProbeServer
from sidecar.settings import Settings, split_addr

log = get_logger("sidecar.server.workers")
WORKER_ENV = "MAC_WORKER_OF"
"""Set in a worker's environment: the supervisor's pid."""
PIPE_ENV = "MAC_WORKER_PIPE"
"""Set in a worker's environment: the descriptor that reads end of file once the supervisor
is gone."""
STABLE_AFTER = 60.0
"""A worker that stayed up this long and dies is started again at once."""
KILL_MARGIN = 5.0
"""Seconds past ``MAC_SHUTDOWN_GRACE`` a stopping worker gets before SIGKILL."""
_POLL = 0.1
_PR_SET_PDEATHSIG = 1


def _environment(settings: Settings, metrics_dir: str, pipe: int) -> dict[str, str]:
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
            PIPE_ENV: str(pipe),
        }
    )
    return env


def _mark_dead(pid: int, path: str) -> None:
    # drops the dead process's live gauges (mac_redis_up, in-flight) from the sum
    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


_Bindable = list[tuple[socket.AddressFamily, tuple[str, int]]]


def check_ports(settings: Settings) -> dict[str, _Bindable]:
    """Fail with a clear message if a port the service needs is taken (by a listener, or by
    the sockets processes share); return the local addresses of each gRPC listener."""
    listeners = {"MAC_GRPC_ADDR": settings.grpc_addr}
    if settings.admin_addr:
        listeners["MAC_ADMIN_ADDR"] = settings.admin_addr
    bindable = {name: _probe(name, addr) for name, addr in listeners.items()}
    if settings.metrics_addr:
        _probe("MAC_METRICS_ADDR", settings.metrics_addr)
    return bindable


def claim_ports(settings: Settings) -> list[socket.socket]:
    """:func:`check_ports`, then the sockets that keep the gRPC ports ours while the supervisor
    lives (also while its workers restart)."""
    held: list[socket.socket] = []
    for name, sockaddrs in check_ports(settings).items():
        for family, sockaddr in sockaddrs:
            sock = socket.socket(family, socket.SOCK_STREAM)
            try:
                # SO_REUSEPORT alone: the workers (same user, SO_REUSEPORT) may bind beside it,
                # any other bind fails; it never listens, so no connection lands on it.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
                sock.bind(sockaddr)
            except OSError as exc:
                sock.close()
                log.warning("cannot hold the port", setting=name, addr=sockaddr, error=str(exc))
            else:
                held.append(sock)
    return held


def _probe(name: str, addr: str) -> _Bindable:
    """The local addresses ``addr`` stands for that can be bound now; ConfigError if taken."""
    host, port = split_addr(addr)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {addr}: {exc.strerror}") from exc
    usable: _Bindable = []
    failure: OSError | None = None
    for family, _, _, _, sockaddr in infos:
        key = (family, (str(sockaddr[0]), int(sockaddr[1])))
        if key in usable:
            continue
        # SO_REUSEADDR (as gRPC and the probe server set it): connections of an earlier run
        # in TIME_WAIT do not count, a listener or a bound socket does; no SO_REUSEPORT, so
        # a port that processes share (the workers of another sidecar) refuses the bind.
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(sockaddr)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise ConfigError(f"{name} {addr} is in use (another sidecar?)") from exc
                failure = exc
                continue
        usable.append(key)
    if not usable:
        reason = failure.strerror if failure is not None else "no address"
        raise ConfigError(f"cannot listen on {addr}: {reason}")
    return usable


@dataclasses.dataclass
class _Slot:
    """One of the N workers: its process while it runs, its restart schedule while not."""

    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    deaths: int = 0
    """Deaths in a row, each before the worker had stayed up ``STABLE_AFTER`` seconds."""
    restart_at: float = 0.0

    def running(self) -> subprocess.Popen[bytes] | None:
        """The worker, if it runs (the probes' threads ask too: one read of ``process``)."""
        process = self.process
        return process if process is not None and process.poll() is None else None


class Supervisor:
    """Starts the workers, restarts one that dies (backing off), stops them all on SIGTERM or
    SIGINT."""

    def __init__(self, settings: Settings) -> None:
        for name, addr in (
            ("MAC_GRPC_ADDR", settings.grpc_addr),
            ("MAC_ADMIN_ADDR", settings.admin_addr),
        ):
            if addr and split_addr(addr)[1] == 0:
                raise ConfigError(f"{name} needs a fixed port with more than one worker")
        if not hasattr(socket, "SO_REUSEPORT"):  # pragma: no cover - Linux, macOS and BSDs have it
            raise ConfigError("more than one worker needs SO_REUSEPORT, which this system lacks")
        self.settings = settings
        self._first_delay = settings.worker_restart_delay
        self._max_delay = settings.worker_restart_delay_max
        self._dir = tempfile.mkdtemp(prefix="mac-sidecar-metrics-")
        self._slots = [_Slot() for _ in range(settings.workers)]
        self._stopping = False
        self.registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(self.registry, path=self._dir)  # type: ignore[no-untyped-call]

    def running(self) -> int:
        """How many workers run now."""
        return sum(slot.running() is not None for slot in self._slots)

    def alive(self) -> bool:
        """At least one worker runs (``/livez``): the supervisor itself never gives up."""
        return not self._stopping and self.running() > 0

    def ready(self) -> bool:
        """Every one of the N workers runs and reaches Redis (``/readyz``)."""
        if self._stopping:
            return False
        workers = [slot.running() for slot in self._slots]
        return all(w is not None and self._reaches_redis(w.pid) for w in workers)

    def _reaches_redis(self, pid: int) -> bool:
        """The worker's own ``mac_redis_up`` is 1: it started, and its last probe succeeded."""
        # prometheus-client keeps each process's live gauges in gauge_live<mode>_<pid>.db
        path = os.path.join(self._dir, f"gauge_livemin_{pid}.db")
        if not os.path.exists(path):
            return False
        metrics = multiprocess.MultiProcessCollector.merge([path])  # type: ignore[no-untyped-call]
        for metric in metrics:
            if metric.name == "mac_redis_up":
                return bool(metric.samples) and all(s.value == 1 for s in metric.samples)
        return False

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True

    def run(self) -> int:
        """Supervise until SIGTERM or SIGINT; return the exit status (0)."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        held: list[socket.socket] = []
        probes = None
        read_end, write_end = os.pipe()  # neither end is inherited but where passed
        try:
            held = claim_ports(self.settings)
            if self.settings.metrics_addr:
                probes = ProbeServer(
                    self.settings.metrics_addr, self.registry, self.alive, self.ready
                )
                probes.start()
            env = _environment(self.settings, self._dir, read_end)
            log.info("supervising", workers=self.settings.workers, grpc=self.settings.grpc_addr)
            while not self._stopping:
                now = time.monotonic()
                for slot in self._slots:
                    self._tend(slot, now, env, read_end)
                time.sleep(_POLL)
            return 0
        finally:
            self._stopping = True
            self._shutdown()
            if probes is not None:
                probes.stop()
            for sock in held:
                sock.close()
            os.close(write_end)
            os.close(read_end)
            shutil.rmtree(self._dir, ignore_errors=True)

    def _tend(self, slot: _Slot, now: float, env: dict[str, str], pipe: int) -> None:
        """Notice the slot's worker died and schedule its restart, or start it when due."""
        process = slot.process
        if process is not None:
            code = process.poll()
            if code is None:
                return
            _mark_dead(process.pid, self._dir)
            slot.process = None
            if now - slot.started >= STABLE_AFTER:
                slot.deaths = 0
            delay = self._delay(slot.deaths)
            slot.deaths += 1
            slot.restart_at = now + delay
            log.warning(
                "worker died",
                pid=process.pid,
                exit_code=code,
                signal=_signal_name(-code) if code < 0 else None,
                uptime_seconds=round(now - slot.started, 3),
                deaths_in_a_row=slot.deaths,
                restart_in_seconds=delay,
                running=self.running(),
            )
        if self._stopping or now < slot.restart_at:
            return
        slot.started = now
        try:
            slot.process = subprocess.Popen(
                [sys.executable, "-m", "sidecar", "serve"], env=env, pass_fds=(pipe,)
            )
        except OSError as exc:
            delay = self._delay(slot.deaths)
            slot.deaths += 1
            slot.restart_at = now + delay
            log.error("cannot start a worker", error=str(exc), retry_in_seconds=delay)
            return
        log.info("worker started", pid=slot.process.pid)

    def _delay(self, deaths: int) -> float:
        """The restart delay after ``deaths`` quick deaths in a row: none after the first."""
        if deaths == 0:
            return 0.0
        return float(min(self._first_delay * 2 ** min(deaths - 1, 64), self._max_delay))

    def _shutdown(self) -> None:
        workers = [slot.process for slot in self._slots if slot.process is not None]
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.settings.shutdown_grace + KILL_MARGIN
        for worker in workers:
            try:
                worker.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                log.error("worker did not stop in time; killing it", pid=worker.pid)
                worker.kill()
                worker.wait()
            log.info("worker stopped", pid=worker.pid, exit_code=worker.returncode)
            _mark_dead(worker.pid, self._dir)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


def watch_supervisor(settings: Settings) -> bool:
    """In a worker: arrange a graceful stop (SIGTERM) for when the supervisor goes, however it
    goes. False if it is gone already, and the worker should not start at all."""
    supervisor = int(os.environ.get(WORKER_ENV) or 0)
    if not supervisor:
        return True
    _parent_death_signal(signal.SIGTERM)
    # The supervisor may have died before the line above: then this process was handed over to
    # another parent already, and no signal would ever come.
    if os.getppid() != supervisor:
        log.warning("the supervisor is gone; not starting", supervisor=supervisor)
        return False
    pipe = os.environ.get(PIPE_ENV)
    if pipe:
        threading.Thread(
            target=_watch_pipe,
            args=(int(pipe), supervisor, settings.shutdown_grace + KILL_MARGIN),
            name="mac-supervisor-watch",
            daemon=True,
        ).start()
    return True


def _parent_death_signal(sig: signal.Signals) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0)
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return False


def _watch_pipe(fd: int, supervisor: int, patience: float) -> None:
    """Block until the supervisor's end of the pipe closes, then stop this process gracefully
    (and for sure, after ``patience`` seconds)."""
    try:
        while os.read(fd, 512):
            pass
    except OSError:
        pass
    log.warning("the supervisor is gone; shutting down", supervisor=supervisor)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(patience)
    log.error("still running long after the supervisor went; exiting")
    os._exit(1)

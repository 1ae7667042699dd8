"""Real sidecar processes (``python -m sidecar serve``), for tests across processes."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

import grpc

from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.constants import SECRET


class SidecarProcess:
    """A ``sidecar serve`` child process on a free port; ``port`` is known once it listens."""

    def __init__(self, redis_url: str, **env: str) -> None:
        self.env = {
            **os.environ,
            "MAC_REDIS_URL": redis_url,
            "MAC_GRPC_ADDR": "127.0.0.1:0",
            "MAC_METRICS_ADDR": "",
            "MAC_IDENTITY_SECRET": SECRET,
            "MAC_LOG_FORMAT": "json",
            "MAC_DEFAULT_PLAN": "enterprise",
            **env,
        }
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 20) -> int:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidecar", "serve"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        stream: IO[str] | None = self.proc.stderr
        assert stream is not None
        deadline = time.monotonic() + timeout
        for line in stream:
            self.lines.append(line)
            if '"listening"' in line:
                self.port = int(json.loads(line)["grpc"].rsplit(":", 1)[1])
                # keep reading: a child whose stderr pipe fills up would block on its next log
                self._reader = threading.Thread(target=self._drain, args=(stream,), daemon=True)
                self._reader.start()
                return self.port
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("sidecar did not start:\n" + "".join(self.lines))

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line)

    def stop(self) -> int:
        """Send SIGTERM, wait, and return the exit status."""
        if self.proc is None:
            return 0
        self.proc.terminate()
        try:
            code = self.proc.wait(15)
        except subprocess.TimeoutExpired:
            # kill it first: its stderr reader would hold the pipe's lock and block the close
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self._reader is not None:
                self._reader.join(5)
                self._reader = None
            elif self.proc.stderr is not None:
                self.lines.extend(self.proc.stderr.readlines())
            if self.proc.stderr is not None:
                self.proc.stderr.close()
        self.proc = None
        return code


@contextlib.asynccontextmanager
async def enforcer_stubs(procs: list[SidecarProcess]) -> AsyncIterator[list[pb_grpc.EnforcerStub]]:
    """Start ``procs`` and yield an Enforcer stub on each; close and stop them all after."""
    channels: list[grpc.aio.Channel] = []
    try:
        for proc in procs:
            proc.start()
            channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}"))
        yield [pb_grpc.EnforcerStub(channel) for channel in channels]
    finally:
        for channel in channels:
            await channel.close()
        for proc in procs:
            proc.stop()


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

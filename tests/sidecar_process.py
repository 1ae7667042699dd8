"""Real sidecar processes (``python -m sidecar serve``), for tests across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import IO

from tests.conftest import SECRET


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
                return self.port
            if time.monotonic() > deadline:
                break
        self.stop()
        raise RuntimeError("sidecar did not start:\n" + "".join(self.lines))

    def stop(self) -> int:
        """Send SIGTERM, wait, and return the exit status."""
        if self.proc is None:
            return 0
        self.proc.terminate()
        try:
            code = self.proc.wait(15)
        finally:
            if self.proc.stderr is not None:
                self.lines.extend(self.proc.stderr.readlines())
                self.proc.stderr.close()
        self.proc = None
        return code

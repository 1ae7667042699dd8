"""The ``sidecar`` command as a child process: a command's exit code and output, and a
``sidecar serve`` expected to refuse to start."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys


async def cli(*args: str, **env: str) -> tuple[int, str, str]:
    """``sidecar ARGS`` with ``env`` added to the environment: its exit code, standard output
    and standard error."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sidecar",
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def serve_once(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``sidecar serve`` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "sidecar", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

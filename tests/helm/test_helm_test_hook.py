"""The `helm test` Pod's script, run as the chart renders it, against a real sidecar."""

from __future__ import annotations

import asyncio
import sys

from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.helm.chart import case_values, one, render
from tests.support.constants import SECRET
from tests.support.redis_servers import free_port


def _hook_command() -> list[str]:
    (container,) = one(render(case_values("default")), "Pod")["spec"]["containers"]
    command: list[str] = container["command"]
    assert command[0] == "python"
    return command


async def _run(addr: str) -> tuple[int, str]:
    # the script as rendered, pointed at the local sidecar instead of the Service
    command = _hook_command()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *command[1:-1],
        addr,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_the_hook_passes_while_the_sidecar_serves(sidecar_app: Sidecar) -> None:
    code, output = await _run(f"127.0.0.1:{sidecar_app.port}")
    assert (code, output.strip()) == (0, f"127.0.0.1:{sidecar_app.port}: SERVING")


async def test_the_hook_fails_while_redis_is_unreachable() -> None:
    settings = Settings(
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        grpc_addr="127.0.0.1:0",
        metrics_addr="",
        identity_secret=SECRET,
        redis_timeout=0.2,
        shutdown_grace=0.1,
    )
    sidecar_app = Sidecar(settings)
    port = await sidecar_app.start()
    try:
        code, output = await _run(f"127.0.0.1:{port}")
    finally:
        await sidecar_app.stop()
    assert (code, output.strip()) == (1, f"127.0.0.1:{port}: NOT_SERVING")

"""The `sidecar` command against a real server, and `sidecar serve` as a process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import redis

from mac_sidecar.server import Sidecar
from tests.conftest import SidecarFactory
from tests.redis_servers import RedisServer, free_port
from tests.sidecar_process import SidecarProcess


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mac_sidecar",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_activate_and_check_print_the_decision(sidecar: Sidecar) -> None:
    addr = f"--addr=127.0.0.1:{sidecar.port}"
    code, out, _ = await cli("activate", "acme", "--email", "Ana@Example.com", addr)
    assert code == 0
    assert "allowed: ADMITTED" in out
    assert "1 of 100 active, 99 remaining" in out
    assert "2026-11" in out

    code, out, _ = await cli("check", "acme", "--email", "ana@example.com", addr, "--json")
    assert code == 0
    decision = json.loads(out)
    assert decision["reason"] == "ALREADY_ACTIVE"
    assert decision["usage"]["active"] == "1"


async def test_denied_exits_1(make_enforcer: SidecarFactory) -> None:
    await make_enforcer(default_limit=0)
    addr = f"--addr=127.0.0.1:{make_enforcer.last.port}"
    code, out, _ = await cli("activate", "acme", "--phone", "+4930123456", addr)
    assert code == 1
    assert "DENIED: LIMIT_REACHED" in out


async def test_bad_input_prints_one_line_and_exits_2(sidecar: Sidecar) -> None:
    addr = f"--addr=127.0.0.1:{sidecar.port}"
    code, out, err = await cli("activate", "acme", "--email", "nope", addr)
    assert code == 2
    assert out == ""
    assert err.strip() == "error: INVALID_ARGUMENT: contact.email: is not an email address"


async def test_no_sidecar_says_so() -> None:
    code, _, err = await cli(
        "activate", "acme", "--id", "x", f"--addr=127.0.0.1:{free_port()}", "--timeout", "1"
    )
    assert code == 2
    assert "cannot reach the sidecar" in err


def test_serve_refuses_to_start_without_a_secret(redis_server: RedisServer) -> None:
    env = SidecarProcess(redis_server.url).env
    del env["MAC_IDENTITY_SECRET"]
    done = subprocess.run(
        [sys.executable, "-m", "mac_sidecar", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "no identity secret" in done.stderr


def test_serve_refuses_a_bad_setting_naming_it(redis_server: RedisServer) -> None:
    env = SidecarProcess(redis_server.url, MAC_DEFAULT_LIMIT="many").env
    done = subprocess.run(
        [sys.executable, "-m", "mac_sidecar", "serve"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 2
    assert "MAC_DEFAULT_LIMIT must be a int" in done.stderr


def test_serve_logs_settings_without_secrets_and_stops_on_sigterm(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    proc = SidecarProcess(redis_server.url)
    proc.start()
    assert proc.stop() == 0
    starting = json.loads(next(line for line in proc.lines if '"starting"' in line))
    assert starting["identity_secret"] == "<set>"
    assert starting["default_limit"] == 100
    assert all("test-identity-secret" not in line for line in proc.lines)
    assert any('"shutting down"' in line for line in proc.lines)

"""examples/simulate.py as a process against an in-process sidecar: its report agrees with
the sidecar's own usage, and the same seed gives the same report."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sidecar.client import AsyncClient
from sidecar.server.app import Sidecar
from tests.support.constants import ADMIN_TOKEN
from tests.support.redis_servers import free_port
from tests.support.sidecars import SidecarFactory

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "simulate.py"
DENIAL_REASONS = {"REASON_LIMIT_REACHED"}


async def simulate(port: int, *args: str) -> tuple[int, str, str]:
    """The script as a subprocess; the event loop keeps serving the in-process sidecar."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SCRIPT),
        f"--addr=127.0.0.1:{port}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def report_of(port: int, workspace: str, *args: str) -> dict[str, Any]:
    code, out, err = await simulate(
        port, f"--workspace={workspace}", f"--token={ADMIN_TOKEN}", "--json", *args
    )
    assert code == 0, err
    found: dict[str, Any] = json.loads(out)
    return found


async def usage_active(port: int, workspace: str) -> tuple[int, int]:
    async with AsyncClient(f"127.0.0.1:{port}", token=ADMIN_TOKEN) as mac:
        usage = (await mac.get_usage(workspace)).usage
    return usage.active, usage.limit


def assert_consistent(report: dict[str, Any], active: int, limit: int) -> None:
    """The report's figures against the sidecar's usage and each other."""
    assert report["counted"] == report["usage"]["active"] == active
    assert report["usage"]["limit"] == limit
    assert report["counted_before_run"] == 0
    assert sum(report["by_channel"].values()) == report["counted"]
    assert set(report["by_channel"]) == {"livechat", "whatsapp", "sms", "email"}
    assert report["verified"] == {"listed": active, "counted_by_run": active, "missing": 0}
    assert sum(report["denied"].values()) == sum(report["denied_at"].values())
    if report["denied"]:
        # denied only at the limit, and only for that reason
        assert set(report["denied"]) == DENIAL_REASONS
        assert report["limit_reached"]
        assert report["usage"]["remaining"] == 0
    else:
        assert not report["limit_reached"]
    campaign = report["campaign"]
    assert campaign["sent"] + campaign["not_sent"] == campaign["audience"]
    assert report["people"] == 60
    assert report["people_served"] <= report["people"]


async def test_the_report_matches_the_sidecar_and_the_seed(sidecar_app: Sidecar) -> None:
    port = sidecar_app.port
    first = await report_of(port, "sim-a", "--contacts=60", "--seed=7", "--month=2026-11")
    active, limit = await usage_active(port, "sim-a")
    assert_consistent(first, active, limit)
    # below the limit of 100: nobody denied, but people reached on several channels
    assert first["denied"] == {}
    assert first["visitors_merged"] > 0
    assert first["conversations"]["total"] > first["people"]
    assert first["trial"] == {"started": False, "running": False, "ends_at": None}

    again = await report_of(port, "sim-b", "--contacts=60", "--seed=7")
    assert {**again, "workspace": "sim-a"} == first
    other = await report_of(port, "sim-c", "--contacts=60", "--seed=8")
    assert other["conversations"] != first["conversations"]


async def test_at_the_limit_new_contacts_are_denied(make_sidecar: SidecarFactory) -> None:
    await make_sidecar(default_limit=20)
    port = make_sidecar.last.port
    report = await report_of(port, "sim", "--contacts=60", "--seed=7")
    assert_consistent(report, 20, 20)
    assert report["denied"]["REASON_LIMIT_REACHED"] > 0
    assert report["campaign"]["not_sent"] > 0
    assert report["people_served"] <= 20


async def test_the_first_contact_over_the_limit_starts_the_trial(
    make_sidecar: SidecarFactory,
) -> None:
    await make_sidecar(default_limit=20, default_plan="starter")
    port = make_sidecar.last.port
    report = await report_of(port, "sim", "--contacts=60", "--seed=7")
    active, limit = await usage_active(port, "sim")
    assert limit == 15_000
    assert_consistent(report, active, limit)
    assert active > 20
    assert report["denied"] == {}
    assert report["trial"] == {
        "started": True,
        "running": True,
        "ends_at": "2026-12-15T12:00:00Z",  # 30 days after the test clock's instant
    }


async def test_the_text_report_and_errors(sidecar_app: Sidecar) -> None:
    port = sidecar_app.port
    code, out, _ = await simulate(port, "--workspace=sim", "--contacts=20", "--seed=3")
    assert code == 0
    assert out.startswith("MAC simulation: workspace sim, seed 3, period 2026-11\n")
    assert "contacts counted" in out
    assert "period 2026-11 (2026-11-01 00:00 UTC to 2026-12-01 00:00 UTC)" in out

    code, out, err = await simulate(port, "--workspace=sim", "--contacts=5", "--month=2026-10")
    assert (code, out) == (2, "")
    assert err.strip() == (
        "error: the sidecar's current period for sim is 2026-11, not 2026-10 "
        "(the sidecar's clock decides the period)"
    )
    code, _, err = await simulate(port, "--workspace=x", "--contacts=5", "--token=wrong")
    assert code == 2
    assert err.startswith("error: UNAUTHENTICATED: ")
    assert len(err.strip().splitlines()) == 1
    assert await usage_active(port, "x") == (0, 100)  # refused before anything was counted

    code, _, err = await simulate(free_port(), "--contacts=5", "--timeout=1")
    assert code == 2
    assert err.strip().startswith("error: cannot reach the sidecar at 127.0.0.1:")

"""The `sidecar` command keeps its exit statuses: hostile flags and failed calls end in one line
and the status of the table, never a traceback, never 0 or 1 for bad input."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.cli import exits
from sidecar.cli.main import build_parser, main
from sidecar.domain.contact import ContactFields
from sidecar.server.app import Sidecar
from tests.support.constants import ADMIN_TOKEN
from tests.support.redis_servers import free_port
from tests.support.sidecars import SidecarFactory

# Every client subcommand with the arguments it needs besides --addr (and --token).
ENFORCER_COMMANDS = (
    ("check", "acme", "--id", "a"),
    ("activate", "acme", "--id", "a"),
    ("check-batch", "acme", "id=a"),
    ("contacts", "key", "acme", "id=a"),
)
ADMIN_COMMANDS = (
    ("subscription", "set", "acme", "--plan", "starter"),
    ("subscription", "get", "acme"),
    ("usage", "acme"),
    ("contacts", "export", "acme"),
    ("contacts", "merge", "acme", "--into", "id=a", "--from", "id=b"),
    ("contacts", "exempt", "acme", "id=a"),
    ("contacts", "forget", "acme", "id=a"),
    ("events", "tail", "acme", "--seconds", "0.1"),
    ("statements", "--period", "2026-11"),
    ("audit", "acme", "--since", "7d"),
)
HOSTILE_TIMEOUTS = ("0", "-1", "nan", "1e400", "inf", "soon", "")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``sidecar ARGV`` in this process: its status, stdout and stderr."""
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        code = exc.code if isinstance(exc.code, int) else exits.USAGE
    out, err = capsys.readouterr()
    return code, out, err


async def run_beside(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """``run`` in a thread, so a sidecar served by this test's loop can answer it."""
    return await asyncio.to_thread(run, capsys, *argv)


def assert_one_line_failure(code: int, err: str, status: int) -> None:
    assert code == status, err
    assert "Traceback" not in err
    assert err.strip(), "a failure says why"


def test_every_subcommand_is_covered() -> None:
    """A subcommand added to the parser without a case here fails this test."""
    names: set[tuple[str, ...]] = set()

    def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
        found = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        return dict(found[0].choices) if found else {}

    for name, sub in commands(build_parser()).items():
        nested = commands(sub)
        if nested:
            names.update((name, n) for n in nested)
        else:
            names.add((name,))
    covered = {
        c[:2] if c[0] in ("contacts", "subscription", "events") else c[:1]
        for c in ENFORCER_COMMANDS + ADMIN_COMMANDS
    }
    assert names - covered == {("serve",)}


@pytest.mark.parametrize("timeout", HOSTILE_TIMEOUTS)
@pytest.mark.parametrize("command", ENFORCER_COMMANDS + ADMIN_COMMANDS, ids=" ".join)
def test_a_hostile_timeout_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...], timeout: str
) -> None:
    code, out, err = run(capsys, *command, f"--addr=127.0.0.1:{free_port()}", "--timeout", timeout)
    assert_one_line_failure(code, err, exits.USAGE)
    assert "--timeout" in err
    assert out == ""


@pytest.mark.parametrize("addr", ["localhost", "127.0.0.1:port", "::::", "127.0.0.1:99999"])
@pytest.mark.parametrize("command", ENFORCER_COMMANDS + ADMIN_COMMANDS, ids=" ".join)
def test_a_bad_address_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...], addr: str
) -> None:
    code, _, err = run(capsys, *command, f"--addr={addr}")
    assert_one_line_failure(code, err, exits.USAGE)
    assert "--addr must be" in err


@pytest.mark.parametrize("command", ENFORCER_COMMANDS + ADMIN_COMMANDS, ids=" ".join)
def test_an_unreachable_sidecar_exits_3(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    token = ("--token=t",) if command in ADMIN_COMMANDS else ()
    code, _, err = run(
        capsys, *command, f"--addr=127.0.0.1:{free_port()}", "--timeout", "1", *token
    )
    assert_one_line_failure(code, err, exits.UNAVAILABLE)
    assert "cannot reach the sidecar" in err


def test_a_bad_page_size_and_unwritable_output_are_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    addr = f"--addr=127.0.0.1:{free_port()}"
    for size in ("0", "-5", "many"):
        code, _, err = run(capsys, "contacts", "export", "acme", addr, "--page-size", size)
        assert_one_line_failure(code, err, exits.USAGE)
    code, _, err = run(capsys, "contacts", "export", "acme", addr, "-o", "/nonexistent/dir/x.csv")
    assert_one_line_failure(code, err, exits.USAGE)
    assert "/nonexistent/dir/x.csv" in err


def test_a_bad_since_or_limit_of_audit_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    addr = f"--addr=127.0.0.1:{free_port()}"
    for flag, value in (
        ("--since", "soon"),
        ("--since", "7w"),
        ("--since", "2026-13-01"),
        ("--limit", "0"),
        ("--limit", "-3"),
    ):
        code, out, err = run(capsys, "audit", "acme", addr, flag, value)
        assert_one_line_failure(code, err, exits.USAGE)
        assert flag in err
        assert out == ""


async def test_bad_periods_and_refused_requests_are_usage_errors(
    capsys: pytest.CaptureFixture[str], sidecar_app: Sidecar
) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    for period in ("2026-13", "November", "2026-1", "0000-00"):
        for command in (("usage", "acme"), ("contacts", "export", "acme")):
            code, _, err = await run_beside(capsys, *command, "--period", period, *conn)
            assert_one_line_failure(code, err, exits.USAGE)
            assert "period" in err
    code, _, err = await run_beside(capsys, "audit", "bad workspace!", *conn)
    assert_one_line_failure(code, err, exits.USAGE)
    assert "workspace_id" in err
    code, _, err = await run_beside(capsys, "usage", "acme", conn[0], "--token=wrong")
    assert_one_line_failure(code, err, exits.USAGE)
    code, _, err = await run_beside(capsys, "activate", "bad workspace!", "--id", "a", conn[0])
    assert_one_line_failure(code, err, exits.USAGE)


async def test_denied_is_1_and_allowed_is_0(
    capsys: pytest.CaptureFixture[str], make_sidecar: SidecarFactory
) -> None:
    await make_sidecar(default_limit=1)
    addr = f"--addr=127.0.0.1:{make_sidecar.last.port}"
    assert (await run_beside(capsys, "activate", "acme", "--id", "a", addr))[0] == exits.OK
    code, out, _ = await run_beside(capsys, "activate", "acme", "--id", "b", addr)
    assert code == exits.DENIED
    assert "DENIED" in out


async def test_the_first_subscription_change_names_plan(
    capsys: pytest.CaptureFixture[str], sidecar_app: Sidecar
) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    code, _, err = await run_beside(capsys, "subscription", "set", "fresh", "--packs", "1", *conn)
    assert code == exits.USAGE
    assert "--plan" in err
    assert "Traceback" not in err


async def test_check_batch_says_a_trial_would_start(
    capsys: pytest.CaptureFixture[str], sidecar_app: Sidecar
) -> None:
    addr = f"--addr=127.0.0.1:{sidecar_app.port}"
    plan = ("--plan", "starter", "--platform-version", "7.0.0", f"--token={ADMIN_TOKEN}")
    assert (await run_beside(capsys, "subscription", "set", "acme", *plan, addr))[0] == exits.OK
    await sidecar_app.enforcer.activate_batch(
        "acme", [ContactFields(id=f"crm-{n}") for n in range(99)]
    )
    code, out, _ = await run_beside(capsys, "check-batch", "acme", "id=n1", "id=n2", "id=n3", addr)
    assert code == exits.OK, out
    assert "3 contacts: fits, by starting a trial" in out
    assert "start a trial    yes, at contact 2" in out
    assert "past the plan's 100: counted under the trial's limit" in out
    code, out, _ = await run_beside(capsys, "check-batch", "acme", "id=crm-1", addr)
    assert "start a trial    no" in out


def _closed_pipe_run(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """``sidecar ARGV`` writing to a pipe whose reader is already gone (``| head`` done)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [sys.executable, "-m", "sidecar", *argv],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)


async def test_a_closed_pipe_ends_quietly(sidecar_app: Sidecar) -> None:
    addr = f"--addr=127.0.0.1:{sidecar_app.port}"
    await sidecar_app.enforcer.activate_batch(
        "acme", [ContactFields(id=f"crm-{n}") for n in range(50)]
    )
    for argv in (
        ("activate", "acme", "--id", "crm-1", "--json", addr),
        ("contacts", "export", "acme", addr, f"--token={ADMIN_TOKEN}"),
        ("--help",),
    ):
        done = await asyncio.to_thread(_closed_pipe_run, *argv)
        assert done.returncode in (exits.BROKEN_PIPE, 0), done.stderr
        assert b"Traceback" not in done.stderr
        assert b"BrokenPipeError" not in done.stderr


def test_the_cli_page_table_lists_every_status(capsys: pytest.CaptureFixture[str]) -> None:
    """The table of docs/cli.md and `sidecar --help` show the statuses the command uses."""
    page = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ", page, flags=re.MULTILINE)
    assert sorted(int(r) for r in rows) == sorted(status for status, _ in exits.TABLE)
    code, out, _ = run(capsys, "--help")
    assert code == exits.OK
    for status, text in exits.TABLE:
        assert f"{status:<4}{text}" in out

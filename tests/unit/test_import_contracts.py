"""The layers are enforced: ``lint-imports`` (run by ``make lint``) fails on a violation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_copy(tmp_path: Path, module: str = "", line: str = "") -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on a copy of the package, with ``line`` added to ``module``."""
    shutil.copytree(
        ROOT / "sidecar", tmp_path / "sidecar", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if module:
        path = tmp_path / "sidecar" / module
        path.write_text(path.read_text() + f"\n{line}\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "200"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_package_keeps_its_contracts(tmp_path: Path) -> None:
    result = lint_copy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("domain/period.py", "import redis  # noqa", "only storage imports redis and hiredis"),
        ("domain/contact.py", "import grpc  # noqa", "the domain and the use cases know no"),
        ("usecases/enforcer.py", "from sidecar import metrics  # noqa", "the domain and the use"),
        ("transport/wire.py", "from sidecar.storage import keys  # noqa", "transport never"),
        ("server/health.py", "from sidecar.storage import store  # noqa", "only the composition"),
        ("server/webhooks.py", "import sidecar.storage.webhooks  # noqa", "only the composition"),
        ("cli/serve.py", "from sidecar.storage import keys  # noqa", "only the composition"),
        ("storage/keys.py", "from sidecar.usecases import periods  # noqa", "layers"),
        ("domain/clock.py", "from sidecar import settings  # noqa", "layers"),
    ],
)
def test_a_violation_fails(tmp_path: Path, module: str, line: str, contract: str) -> None:
    result = lint_copy(tmp_path, module, line)
    assert result.returncode != 0
    # "<contract> BROKEN", followed by "(N ignored imports)" when the contract ignores some
    broken = [ln for ln in result.stdout.splitlines() if " BROKEN" in ln]
    assert [ln for ln in broken if ln.startswith(contract)], result.stdout

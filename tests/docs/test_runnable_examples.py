"""Every runnable example of the README and docs/ runs against a real sidecar and its own Redis,
as pasted from the repository's root after `make run`, and prints what the page shows."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.docs.examples import (
    DEV_REDIS_PORT,
    GRPC_ADDR,
    METRICS_ADDR,
    REPO,
    Example,
    examples,
    missing_lines,
    pages,
)
from tests.support.redis_servers import RedisServer, free_port
from tests.support.sidecar_process import SidecarProcess

README = REPO / "README.md"
# the README's tour has a test of its own, which takes it twice
PAGES = [page for page in pages() if page != README and examples(page)]


@dataclass
class LocalRun:
    """What `make run` would start: Redis and a sidecar on the development defaults, but on
    free ports, which the examples' addresses are rewritten to."""

    redis: RedisServer
    sidecar: SidecarProcess | None = None
    metrics_addr: str = ""

    def start(self) -> None:
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.sidecar = SidecarProcess(
            self.redis.url,
            MAC_METRICS_ADDR=self.metrics_addr,
            MAC_DEFAULT_PLAN="starter",
        )
        self.sidecar.start()

    def stop(self) -> None:
        if self.sidecar is not None:
            self.sidecar.stop()
            self.sidecar = None

    @property
    def grpc_addr(self) -> str:
        assert self.sidecar is not None
        return f"127.0.0.1:{self.sidecar.port}"

    def localize(self, code: str) -> str:
        """The example's text with `make run`'s addresses replaced by this run's."""
        return (
            code.replace(GRPC_ADDR, self.grpc_addr)
            .replace(METRICS_ADDR, self.metrics_addr)
            .replace(DEV_REDIS_PORT, f"-p {self.redis.port}")
        )

    def run(self, example: Example) -> subprocess.CompletedProcess[str]:
        code = self.localize(example.code)
        if example.language == "sh":
            argv = ["bash", "-e", "-o", "pipefail", "-c", code]
        else:
            argv = [sys.executable, "-c", code]
        env = {key: value for key, value in os.environ.items() if not key.startswith("MAC_")}
        env["MAC_GRPC_ADDR"] = self.grpc_addr
        return subprocess.run(
            argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False
        )


@pytest.fixture
def local_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalRun]:
    # the sidecar must not take a developer's own settings (an admin token, another plan)
    for key in [key for key in os.environ if key.startswith("MAC_")]:
        monkeypatch.delenv(key)
    redis = RedisServer()
    redis.start()
    run = LocalRun(redis)
    try:
        run.start()
        yield run
    finally:
        run.stop()
        redis.close()


def run_all(run: LocalRun, page_examples: list[Example]) -> None:
    for example in page_examples:
        done = run.run(example)
        said = f"{example}\n--- stdout\n{done.stdout}--- stderr\n{done.stderr}"
        assert done.returncode == example.exit_status, said
        assert "Traceback" not in done.stderr, said
        missing = missing_lines(example.shown, done.stdout + done.stderr)
        assert not missing, f"{said}--- not printed\n" + "\n".join(missing)


@pytest.mark.parametrize("page", PAGES, ids=[str(page.relative_to(REPO)) for page in PAGES])
def test_the_examples_of_a_page_run_as_shown(page: Path, local_run: LocalRun) -> None:
    run_all(local_run, examples(page))


def test_the_readme_tour_runs_as_shown_cleans_up_and_runs_again(local_run: LocalRun) -> None:
    """After the tour's clean-up a second `make run` on the same Redis (its data persists)
    takes the tour again."""
    tour = examples(README)
    run_all(local_run, tour)
    db = local_run.redis.client()
    try:
        assert db.keys("mac:{tour}:*") == []
        assert not db.sismember("mac:workspaces", "tour")
    finally:
        db.close()
    local_run.stop()
    local_run.start()
    run_all(local_run, tour)


def test_the_readme_tour_reaches_a_denial_in_at_most_15_commands() -> None:
    tour = examples(README)
    commands = [command for example in tour for command in example.commands()]
    assert len(commands) <= 15, commands
    assert any(
        example.exit_status == 1 and "DENIED: LIMIT_REACHED" in "\n".join(example.shown)
        for example in tour
    )

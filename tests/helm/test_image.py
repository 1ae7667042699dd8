"""The Dockerfile: multi-stage, non-root and read-only, and agreeing with the chart and Settings."""

from __future__ import annotations

import json
import re
import shlex
import tomllib

import yaml

from sidecar.settings import Settings
from tests.helm.chart import CHART, ROOT, SETTINGS_ENV

DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"


def _instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _all(keyword: str) -> list[str]:
    return [rest for k, rest in _instructions() if k == keyword]


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (k, _) in enumerate(instructions) if k == "FROM")
    return instructions[last_from:]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_two_stages_on_python_3_11_slim() -> None:
    args = dict(a.partition("=")[::2] for a in _all("ARG") if "=" in a)
    froms = _all("FROM")
    assert len(froms) == 2
    assert froms[0] == "${PYTHON_IMAGE} AS builder"
    assert froms[1] == "${PYTHON_IMAGE}"
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    copies = [rest for k, rest in _final_stage() if k == "COPY"]
    assert copies == ["--from=builder /opt/venv /opt/venv"]


def test_runs_as_a_numeric_non_root_user_matching_the_chart() -> None:
    (user,) = [rest for k, rest in _final_stage() if k == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) > 0
    assert gid.isdigit()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["securityContext"]["runAsUser"] == int(uid)
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_entrypoint_serves_and_nothing_is_written_at_run_time() -> None:
    stage = _final_stage()
    assert [json.loads(r) for k, r in stage if k == "ENTRYPOINT"] == [["sidecar"]]
    assert [json.loads(r) for k, r in stage if k == "CMD"] == [["serve"]]
    env = _env(stage)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_its_mac_variables_are_settings_that_parse() -> None:
    env = {k: v for k, v in _env(_final_stage()).items() if k.startswith("MAC_")}
    assert env == {
        "MAC_GRPC_ADDR": "0.0.0.0:50051",
        "MAC_METRICS_ADDR": "0.0.0.0:9464",
        "MAC_LOG_FORMAT": "json",
    }
    assert set(env) <= SETTINGS_ENV
    settings = Settings.from_env(env)
    assert (settings.grpc_addr, settings.log_format) == ("0.0.0.0:50051", "json")


def test_exposes_the_chart_ports() -> None:
    exposed = {int(p) for rest in _all("EXPOSE") for p in rest.split()}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert exposed == {values["grpc"]["port"], values["admin"]["port"], values["metrics"]["port"]}


def test_oci_labels() -> None:
    labels = dict(pair.partition("=")[::2] for rest in _all("LABEL") for pair in shlex.split(rest))
    for key in ("title", "description", "version", "revision", "created", "licenses"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_dockerignore_lets_in_exactly_what_the_build_copies() -> None:
    patterns = [
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied: set[str] = set()
    for rest in _all("COPY"):
        if rest.startswith("--from="):
            continue
        copied.update(p.rstrip("/") for p in rest.split()[:-1])
    assert copied == allowed
    assert all((ROOT / path).exists() for path in copied)


def test_chart_app_version_and_image_version_are_the_package_version() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version
    args = dict(a.partition("=")[::2] for a in _all("ARG") if "=" in a)
    assert args["VERSION"] == version


def test_the_image_installs_exactly_the_lock() -> None:
    """The builder installs uv by hash and the runtime group of uv.lock with the native extra
    (so MAC_GRPC_ENGINE=native works in the image), refusing a stale lock."""
    runs = _all("RUN")
    assert any("--require-hashes" in r and "tools/uv/requirements.txt" in r for r in runs)
    (sync,) = [r for r in runs if "uv sync" in r]
    words = sync.split()
    assert {"--locked", "--no-dev", "--no-editable"} <= set(words)
    assert words[words.index("--extra") + 1] == "native"
    assert "pip install /wheels" not in " ".join(runs)


def test_uv_is_the_version_the_project_requires() -> None:
    """tools/uv/requirements.txt pins the uv that pyproject's required-version names."""
    uv = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]
    required = uv["required-version"]
    pinned = (ROOT / "tools/uv/requirements.txt").read_text().split()[0]
    assert required == "==" + pinned.partition("==")[2]
    assert "--hash=sha256:" in (ROOT / "tools/uv/requirements.txt").read_text()

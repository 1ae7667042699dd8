"""values.yaml documents every key, and values.schema.json agrees with the sidecar's Settings."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest

from sidecar.settings import Settings
from tests.helm.chart import CHART

VALUES = CHART / "values.yaml"
# Kubernetes objects passed through as they are: their fields are Kubernetes's to document.
PASSTHROUGH = (
    "resources",
    "podSecurityContext",
    "securityContext",
    "updateStrategy",
    "redis.bundled.resources",
    "topologySpreadConstraints",
)
_KEY = re.compile(r"^( *)([A-Za-z0-9_.\-/\"]+):( |$)")


def undocumented_keys(text: str) -> list[str]:
    """The keys of a values file with no comment on the lines above or on their own line."""
    lines = text.splitlines()
    stack: list[tuple[int, str]] = []
    missing: list[str] = []
    for i, line in enumerate(lines):
        found = _KEY.match(line)
        if found is None:
            continue
        indent, key = len(found[1]), found[2]
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = ".".join(k for _, k in stack)
        stack.append((indent, key))
        path = f"{parent}.{key}" if parent else key
        if any(parent == p or parent.startswith(f"{p}.") for p in PASSTHROUGH):
            continue
        above = lines[i - 1].strip() if i else ""
        if not above.startswith("#") and "#" not in line:
            missing.append(path)
    return missing


def test_every_key_of_values_yaml_is_commented() -> None:
    assert undocumented_keys(VALUES.read_text()) == []


def test_the_comment_check_finds_a_bare_key() -> None:
    text = "# -- documented\na:\n  # -- documented\n  b: 1\n  c: 2\nresources:\n  limits: {}\n"
    assert undocumented_keys(text) == ["a.c", "resources"]


def _config_schema() -> dict[str, Any]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    config: dict[str, Any] = schema["properties"]["config"]["properties"]
    return config


def _by_env() -> dict[str, dataclasses.Field[Any]]:
    return {f.metadata["env"]: f for f in dataclasses.fields(Settings)}


@pytest.mark.parametrize("key", sorted(_config_schema()))
def test_the_schema_of_config_follows_the_setting(key: str) -> None:
    prop = _config_schema()[key]
    field = _by_env()[prop["description"]]
    assert prop["description"] == "MAC_" + re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper()
    if "choices" in field.metadata:
        assert set(prop["enum"]) - {None} == set(field.metadata["choices"])
    if "minimum" in field.metadata:
        assert prop["minimum"] == field.metadata["minimum"]
    kind = type(field.default)
    if kind in (int, float, str) and "enum" not in prop and "oneOf" not in prop:
        expected = {int: "integer", float: "number", str: "string"}[kind]
        assert expected in prop["type"]

"""The chart's README: its values table generated from values.yaml and kept fresh."""

from __future__ import annotations

import yaml

from tests.helm.chart import CHART
from tools import chart_values


def test_the_values_table_is_fresh() -> None:
    """``make docs`` regenerates it; a values.yaml comment changed without it fails here."""
    readme = (CHART / "README.md").read_text()
    assert chart_values.render(readme, (CHART / "values.yaml").read_text()) == readme


def test_every_top_level_value_is_in_the_table() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    described = {v.path for v in chart_values.described_values((CHART / "values.yaml").read_text())}
    assert set(values) <= described
    readme = (CHART / "README.md").read_text()
    for key in ("image.repository", "redis.url", "config.failureMode", "mode"):
        assert f"| `{key}` |" in readme


def test_the_table_follows_nesting_descriptions_and_block_scalars() -> None:
    text = """\
# -- Top
# second line
top:
  # -- A | pipe
  leaf: 3
  undocumented: x
  # -- Text
  text: |
    # -- not a key
    body: 1
  # -- After
  after: [1, 2]
"""
    found = chart_values.described_values(text)
    assert [(v.path, v.default, v.description) for v in found] == [
        ("top", "", "Top second line"),
        ("top.leaf", "`3`", "A | pipe"),
        ("top.text", '`"# -- not a key\\nbody: 1\\n"`', "Text"),
        ("top.after", "`[1, 2]`", "After"),
    ]
    assert "A \\| pipe" in chart_values.table(found)


def test_a_stale_table_is_rewritten() -> None:
    readme = (CHART / "README.md").read_text()
    stale = readme.replace("| `mode` |", "| `mode-old` |")
    assert chart_values.render(stale, (CHART / "values.yaml").read_text()) == readme

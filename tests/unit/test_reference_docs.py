"""The generated reference pages: every setting and every metric, never stale."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from sidecar import metrics
from sidecar.settings import Settings
from tools import reference_docs


@pytest.mark.parametrize("name", sorted(reference_docs.PAGES))
def test_the_page_is_fresh(name: str) -> None:
    """``make docs`` writes it; a setting or metric changed without it fails here."""
    page = (reference_docs.DOCS / name).read_text()
    assert page == reference_docs.PAGES[name]()


def test_every_setting_has_a_row_with_its_bounds() -> None:
    page = reference_docs.configuration()
    for f in fields(Settings):
        assert f"| `{f.metadata['env']}` | `--{f.name.replace('_', '-')}` |" in page
    assert "| `MAC_REDIS_TYPE` | `--redis-type` | `single` | `single`, `cluster`, `sentinel` |" in (
        page
    )
    assert "| `MAC_REDIS_WAIT_REPLICAS` | `--redis-wait-replicas` | `0` | 0 to 16 |" in page


def test_every_metric_has_a_row() -> None:
    page = reference_docs.metrics_page()
    assert "| `mac_decisions_total` | counter | `method`, `reason` |" in page
    assert "| `mac_redis_up` | gauge |" in page
    defined = [v for v in vars(metrics).values() if hasattr(v, "_documentation")]
    assert page.count("\n| `mac_") == len(defined)


def test_a_stale_page_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference_docs, "DOCS", tmp_path)
    assert reference_docs.main(["--check"]) == 1
    assert reference_docs.main([]) == 0
    assert reference_docs.main(["--check"]) == 0

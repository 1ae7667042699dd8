"""The example files in the repository stay valid."""

from __future__ import annotations

from pathlib import Path

from sidecar.domain.catalog import DEFAULT_PLANS, PlanCatalog

ROOT = Path(__file__).resolve().parents[2]


def test_example_catalog_is_the_built_in_one() -> None:
    catalog = PlanCatalog.from_file(str(ROOT / "examples" / "plans.json"))
    assert tuple(catalog.plans.values()) == DEFAULT_PLANS
    assert catalog.default.name == "starter"

"""The plan catalog: limits, bounds, trials, and catalog files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.errors import ConfigError, FailedPrecondition, InvalidArgument
from sidecar.domain.subscription import Subscription, resolve

CATALOG = PlanCatalog()


@pytest.mark.parametrize(
    ("plan", "packs", "custom", "limit"),
    [
        ("starter", 0, 0, 100),
        ("pro", 0, 0, 100),
        ("pro", 1, 0, 3_100),
        ("pro", 5, 0, 15_100),
        ("enterprise", 0, 0, 100),
        ("enterprise", 0, 20_000, 20_000),
        ("enterprise", 40, 20_000, 140_000),
    ],
)
def test_effective_limit(plan: str, packs: int, custom: int, limit: int) -> None:
    assert resolve(Subscription("acme", plan, packs, custom), CATALOG).limit == limit


@pytest.mark.parametrize(
    ("plan", "packs", "custom", "message"),
    [
        ("starter", 1, 0, "starter allows no MAC packs"),
        ("pro", 6, 0, "pro allows 0 to 5 MAC packs"),
        ("pro", 0, 5000, "pro has no custom limit"),
        ("starter", 0, 1, "starter has no custom limit"),
    ],
)
def test_out_of_bounds_names_the_bound(plan: str, packs: int, custom: int, message: str) -> None:
    with pytest.raises(FailedPrecondition, match=message):
        resolve(Subscription("acme", plan, packs, custom), CATALOG)


def test_unknown_plan_and_negative_packs_are_bad_input() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(Subscription("acme", "platinum"), CATALOG)
    assert caught.value.field == "plan"
    assert "starter" in caught.value.message
    with pytest.raises(InvalidArgument) as caught:
        resolve(Subscription("acme", "pro", -1), CATALOG)
    assert caught.value.field == "packs"


def test_trials_go_to_the_next_plan() -> None:
    starter = resolve(Subscription("a", "starter"), CATALOG)
    assert (starter.trial_plan, starter.trial_limit, starter.trial_days) == ("pro", 15_000, 30)
    assert resolve(Subscription("a", "pro"), CATALOG).trial_plan == "enterprise"
    assert resolve(Subscription("a", "enterprise"), CATALOG).trial_plan == ""


def test_major_release_of_the_platform_version() -> None:
    assert Subscription("a", "pro", platform_version="7.3.0").major == "7"
    assert Subscription("a", "pro", platform_version="6").major == "6"
    assert Subscription("a", "pro").major == "0"


def test_catalog_file_replaces_the_plans(tmp_path: Path) -> None:
    path = tmp_path / "plans.json"
    path.write_text(
        json.dumps(
            {
                "default": "free",
                "plans": [
                    {"name": "free", "included": 50, "trial": {"plan": "biz", "limit": 999}},
                    {"name": "biz", "included": 1000, "pack_size": 500, "max_packs": 10},
                ],
            }
        )
    )
    catalog = PlanCatalog.from_file(str(path))
    assert catalog.default.name == "free"
    assert resolve(Subscription("a", "biz", 3), catalog).limit == 2500
    assert resolve(Subscription("a", "free"), catalog).trial_limit == 999


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json", "is not JSON"),
        ('{"plans": [{"included": 5}]}', "bad plan entry"),
        (
            '{"default": "a", "plans": '
            '[{"name": "a", "included": 5, "trial": {"plan": "zz", "limit": 1}}]}',
            "trial plan 'zz' is unknown",
        ),
        ('{"default": "b", "plans": [{"name": "a", "included": 5}]}', "default plan 'b'"),
    ],
)
def test_bad_catalog_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "plans.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        PlanCatalog.from_file(str(path))


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("x" * 20_000, "'" + "x" * 24 + "...'"),
        ("ana@example.com", "(the value given)"),
        ("+55 11 98765-4321", "(the value given)"),
        ("pro\x00\u200b", "'pro??'"),
    ],
)
def test_an_unknown_plan_is_quoted_short_and_never_as_an_address(name: str, shown: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        PlanCatalog().plan(name)
    assert caught.value.message == f"unknown plan {shown} (known: enterprise, pro, starter)"

"""The chart lints strictly and renders objects valid for Kubernetes 1.27 and the newest version."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.helm.chart import (
    CASES,
    KUBE_VERSIONS,
    MONITORING,
    case_values,
    check_custom_resource,
    lint,
    merge,
    render,
    render_case,
    validate_object,
)


def test_the_ci_matrix_is_there() -> None:
    assert case_values("default") == {}  # the chart with no values at all
    assert {
        "default",
        "external-redis",
        "sidecar-mode",
        "bundled-redis",
        "full-features",
        "existing-secrets",
    } <= set(CASES)


@pytest.mark.parametrize("case", CASES)
def test_lints_strictly(case: str) -> None:
    report = lint(case_values(case))
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert report["errors"] == [], report
    assert problems == [], report


def test_lint_reports_values_the_schema_refuses() -> None:
    report = lint(merge(case_values("default"), {"mode": "foo"}))
    assert any("mode" in e for e in report["errors"]), report


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("case", CASES)
def test_every_object_is_valid_kubernetes(case: str, version: str) -> None:
    objects = render_case(case)
    assert objects
    for o in objects:
        validate_object(o, version)


def test_validation_is_strict() -> None:
    # an unknown field fails: the check above would catch a misspelt key
    deployment = next(o for o in render_case("default") if o["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(AssertionError, match="readinesProbe"):
        validate_object(deployment, KUBE_VERSIONS[0])


def test_custom_resources_are_checked() -> None:
    monitors = [o for o in render_case("full-features") if o["apiVersion"] == MONITORING]
    assert {o["kind"] for o in monitors} == {"ServiceMonitor", "PrometheusRule"}
    for monitor in monitors:
        check_custom_resource(monitor)
        broken = merge(monitor, {"spec": {"groups": [], "endpoints": []}})
        with pytest.raises(AssertionError):
            check_custom_resource(broken)


@pytest.mark.parametrize("version", ["1.29.0", KUBE_VERSIONS[-1]])
def test_native_sidecar_mode_is_valid_from_kubernetes_1_29(version: str) -> None:
    values = merge(case_values("sidecar-mode"), {"sidecar": {"native": True}})
    for o in render(values):
        validate_object(o, version)


def test_native_sidecar_is_refused_before_kubernetes_1_29(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # In lint mode Helm logs a template's `fail` (on stderr) instead of stopping.
    values = merge(case_values("sidecar-mode"), {"sidecar": {"native": True}})
    lint(values, kube_version="v1.29.0")
    assert "sidecar.native needs" not in capfd.readouterr().err
    lint(values, kube_version="v1.28.0")
    assert "sidecar.native needs Kubernetes 1.29 or newer" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"redis": {"url": "redis://r:6379/0", "bundled": {"enabled": True}}},
            "redis.bundled.enabled=true runs the bundled Redis, but redis.url names an external",
        ),
        (
            {"redis": {"existingSecret": "s", "bundled": {"enabled": True}}},
            "but redis.existingSecret names an external one too",
        ),
        (
            {"redis": {"url": "redis://r:6379/0", "existingSecret": "s"}},
            "redis.url and redis.existingSecret are both set",
        ),
        (
            {"redis": {"bundled": {"enabled": False}}},
            "redis.bundled.enabled=false needs an external Redis",
        ),
        # the key of chart 0.1
        ({"redis": {"enabled": True}}, r"redis.enabled is now redis.bundled.enabled"),
    ],
)
def test_redis_is_configured_once(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"webhook": {"secret": "s" * 32}}, "sign the webhooks of webhook.url"),
        ({"webhook": {"existingSecret": "hooks"}}, "sign the webhooks of webhook.url"),
        (
            {"webhook": {"url": "https://h.example/", "secret": "x", "existingSecret": "hooks"}},
            "webhook.secret and webhook.existingSecret are both set",
        ),
        (
            {"webhook": {"existingSecretUrlKey": "url"}},
            "webhook.existingSecretUrlKey is a key of webhook.existingSecret",
        ),
        (
            {
                "webhook": {
                    "url": "https://h.example/",
                    "existingSecret": "hooks",
                    "existingSecretUrlKey": "url",
                }
            },
            "webhook.url and webhook.existingSecretUrlKey are both set",
        ),
    ],
)
def test_webhook_values_that_do_not_fit_together_are_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)

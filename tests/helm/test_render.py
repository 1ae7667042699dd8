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
    notes,
    render,
    render_case,
    validate_object,
)


def test_the_ci_matrix_is_there() -> None:
    assert {
        "default",
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
        ({}, "exactly one Redis.*none is set"),
        (
            {"redis": {"url": "redis://r:6379/0", "enabled": True}},
            "redis.url, redis.enabled are all set",
        ),
        (
            {"redis": {"url": "redis://r:6379/0", "existingSecret": "s"}},
            "redis.url, redis.existingSecret are all set",
        ),
    ],
)
def test_redis_must_be_configured_exactly_once(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


def test_notes_say_how_to_call_the_service_and_read_usage() -> None:
    text = notes(case_values("default"))
    assert "rel-mac-sidecar.mac.svc:50051" in text
    assert "grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check" in text
    assert "mac.v1.Enforcer/Activate" in text
    assert "exec deploy/rel-mac-sidecar -- sidecar activate acme" in text
    assert "get secret rel-mac-sidecar -o jsonpath='{.data.admin-token}'" in text
    assert "sidecar usage acme --addr 127.0.0.1:50052" in text
    assert "helm test rel" in text
    assert "must never change" in text


def test_notes_in_sidecar_mode_show_the_templates_to_include() -> None:
    text = notes(case_values("sidecar-mode"))
    assert 'include "mac-sidecar.containers" (index .Subcharts "mac-sidecar")' in text
    assert 'include "mac-sidecar.volumes" (index .Subcharts "mac-sidecar")' in text
    assert "127.0.0.1:50051" in text


def test_notes_name_an_existing_admin_token_secret() -> None:
    text = notes(case_values("existing-secrets"))
    assert "get secret mac-admin -o jsonpath='{.data.token}'" in text
    assert "comes from the Secret mac-identity" in text

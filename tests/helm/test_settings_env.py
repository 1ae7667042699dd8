"""Every MAC_* variable the chart sets is a setting of the sidecar; every setting is reachable."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.server.terms import plan_catalog, policy
from sidecar.settings import Settings
from tests.helm.chart import (
    CASES,
    CHART,
    FULLNAME,
    KNOWN_ENV,
    SETTINGS_ENV,
    Obj,
    case_values,
    container_env,
    find,
    merge,
    one,
    render,
    render_case,
    rendered_mac_names,
    secret_data,
    sidecar_containers,
)

# Two ways to give one setting: the chart sets one or the other, never both.
EITHER = (
    {"MAC_IDENTITY_SECRET", "MAC_IDENTITY_SECRET_FILE"},
    {"MAC_ADMIN_TOKEN", "MAC_ADMIN_TOKEN_FILE"},
)
# Defaults of values.yaml that differ from the sidecar's on purpose.
CHART_DEFAULTS = {"MAC_LOG_FORMAT": "json"}


def _values_yaml() -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / "values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("case", CASES)
def test_every_mac_variable_the_chart_sets_is_a_setting(case: str) -> None:
    names = rendered_mac_names(render_case(case))
    assert names, "no MAC_* variable rendered"
    assert names <= KNOWN_ENV, f"not read by Settings nor the CLI: {sorted(names - KNOWN_ENV)}"


def test_the_check_catches_a_variable_the_sidecar_does_not_read() -> None:
    values = merge(case_values("default"), {"extraEnv": [{"name": "MAC_NO_SUCH", "value": "1"}]})
    assert "MAC_NO_SUCH" in rendered_mac_names(render(values)) - KNOWN_ENV


def test_full_features_sets_every_setting() -> None:
    names = rendered_mac_names(render_case("full-features"))
    missing = SETTINGS_ENV - names - set().union(*EITHER)
    assert not missing, f"settings the chart cannot set: {sorted(missing)}"
    for pair in EITHER:
        assert len(names & pair) == 1, sorted(names & pair)


def test_every_setting_is_reachable_from_values() -> None:
    reached = set().union(*(rendered_mac_names(render_case(case)) for case in CASES))
    assert reached >= SETTINGS_ENV, f"unreachable: {sorted(SETTINGS_ENV - reached)}"
    assert reached <= KNOWN_ENV


def test_values_config_defaults_are_the_sidecars() -> None:
    fields = {f.metadata["env"]: f for f in dataclasses.fields(Settings)}
    for key, value in _values_yaml()["config"].items():
        env = "MAC_" + re.sub(r"(?<!^)(?=[A-Z])", "_", key).upper()
        assert env in fields, f"config.{key}: {env} is not a setting"
        expected = CHART_DEFAULTS.get(env, fields[env].default)
        if env == "MAC_THRESHOLDS" and isinstance(value, list):
            value = ",".join(str(v) for v in value)
        assert value == expected, f"config.{key} is {value!r}, the sidecar's default {expected!r}"


# What the user's Secrets hold, for the variables they give.
_THEIR_SECRETS = {
    "MAC_REDIS_URL": "redis://redis:6379/0",
    "MAC_WEBHOOK_URL": "https://hooks.example.internal/mac",
}


def _environment(objects: list[Obj], container: Obj, tmp_path: Path) -> dict[str, str]:
    """The container's environment as the sidecar would see it, secrets filled in: from the
    chart's Secret as rendered, or the user's as they would be."""
    environ: dict[str, str] = {}
    for name, source in container_env(objects, container).items():
        if "value" in source:
            environ[name] = str(source["value"])
        elif "secret" in source:
            secret, key = source["secret"]
            ours = find(objects, "Secret", secret)
            if ours:
                environ[name] = secret_data(ours[0])[key]
            else:
                environ[name] = _THEIR_SECRETS.get(name, "s" * 32)
    for name in ("MAC_PLAN_CATALOG", "MAC_IDENTITY_SECRET_FILE"):
        if name in environ:  # a mounted file: give the test its content
            local = tmp_path / Path(environ[name]).name
            environ[name] = str(local)
            if name == "MAC_PLAN_CATALOG":
                plans = one(objects, "ConfigMap", f"{FULLNAME}-plans")
                local.write_text(plans["data"]["plans.json"])
            else:
                local.write_text("f" * 32)
    return environ


@pytest.mark.parametrize("case", [c for c in CASES if case_values(c).get("mode") != "sidecar"])
def test_the_rendered_settings_start_the_sidecar(case: str, tmp_path: Path) -> None:
    objects = render_case(case)
    assert sidecar_containers(objects)
    for container in sidecar_containers(objects):
        environ = _environment(objects, container, tmp_path)
        settings = Settings.from_env(environ)
        assert len(settings.secret_bytes()) >= 16
        assert settings.grpc_addr == "0.0.0.0:50051"
        # what the sidecar builds from its settings before it connects to Redis
        assert policy(settings, plan_catalog(settings)).limit == settings.default_limit


def test_full_features_values_reach_the_settings(tmp_path: Path) -> None:
    objects = render_case("full-features")
    (container,) = sidecar_containers(objects)
    settings = Settings.from_env(_environment(objects, container, tmp_path))
    assert settings.admin_addr == "0.0.0.0:50052"
    assert settings.metrics_addr == "0.0.0.0:9464"
    assert settings.default_limit == 250
    assert settings.threshold_list() == [50, 80, 100]
    assert settings.failure_mode == "allow"
    assert settings.redis_timeout == 0.25
    assert settings.shutdown_grace == 10.0
    assert settings.log_level == "info"  # extraEnv wins over config.logLevel
    assert settings.webhook_url == "https://billing.example.internal/mac/events"
    assert len(settings.webhook_secret) == 48  # generated into the chart's Secret
    assert settings.webhook_timeout_ms == 3000
    assert settings.webhook_max_backoff_ms == 120_000
    assert (settings.redis_type, settings.redis_sentinel_master) == ("sentinel", "mymaster")
    assert (settings.redis_username, settings.redis_sentinel_username) == ("mac", "sentinel-user")
    assert settings.redis_password == "redis-acl-password"
    assert settings.redis_sentinel_password == "sentinel-password"
    assert (settings.redis_wait_replicas, settings.redis_wait_timeout_ms) == (1, 200)
    assert settings.journal_dir == "/var/lib/mac-sidecar/journal"
    assert (settings.journal_max_entries, settings.known_contacts_max) == (50_000, 200_000)
    # the passwords come from the Secret, never the ConfigMap
    env = container_env(objects, container)
    for name in ("MAC_REDIS_PASSWORD", "MAC_REDIS_SENTINEL_PASSWORD"):
        assert env[name] == {"secret": (FULLNAME, env[name]["secret"][1])}
    configmap = one(objects, "ConfigMap", FULLNAME)["data"]
    assert "redis-acl-password" not in json.dumps(configmap)
    assert "sentinel-password" not in json.dumps(configmap)


def test_existing_secrets_give_the_redis_passwords() -> None:
    objects = render_case("existing-secrets")
    env = container_env(objects, sidecar_containers(objects)[0])
    assert env["MAC_REDIS_PASSWORD"] == {"secret": ("mac-redis", "password")}
    assert env["MAC_REDIS_SENTINEL_PASSWORD"] == {"secret": ("mac-redis", "sentinel-password")}


@pytest.mark.parametrize(
    ("redis", "message"),
    [
        ({"type": "cluster"}, "redis.type cluster needs an external Redis"),
        ({"type": "sentinel", "url": "redis://s1:26379"}, "needs redis.sentinel.masterName"),
    ],
)
def test_topologies_the_chart_refuses(redis: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match=message):
        render(merge(case_values("default"), {"redis": redis}))


def test_the_bundled_redis_url_reaches_the_settings(tmp_path: Path) -> None:
    objects = render_case("default")
    (container,) = sidecar_containers(objects)
    settings = Settings.from_env(_environment(objects, container, tmp_path))
    assert settings.redis_url.startswith("redis://:")
    assert settings.redis_url.endswith(f"@{FULLNAME}-redis:6379/0")


def test_metrics_off_empties_the_metrics_address() -> None:
    values = merge(
        case_values("default"),
        {
            "metrics": {"enabled": False},
            "probes": {"startup": {"type": "grpc"}, "liveness": {"type": "grpc"}},
        },
    )
    objects = render(values)
    (container,) = sidecar_containers(objects)
    assert container_env(objects, container)["MAC_METRICS_ADDR"] == {"value": ""}

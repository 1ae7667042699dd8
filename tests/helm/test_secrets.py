"""The admin token, the identity secret and the Redis URL: generated and kept, or the user's own."""

from __future__ import annotations

import re
from typing import Any

import helm_python as helm
import pytest

from tests.helm.chart import (
    FULLNAME,
    Obj,
    case_values,
    container_env,
    find,
    merge,
    objects_of,
    one,
    render,
    render_case,
    render_raw,
    secret_data,
    sidecar_container,
)
from tests.helm.fake_api import fake_cluster

DEFAULT = case_values("default")
EXTERNAL = case_values("external-redis")
ADMIN_TOKEN_FILE = "/etc/mac-sidecar/admin-token/admin-token"


def admin_token_volume(objects: list[Obj]) -> Obj | None:
    """The Secret source of the admin token's volume, or ``None``."""
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    found = [v["secret"] for v in spec["volumes"] if v["name"] == "mac-sidecar-admin-token"]
    return found[0] if found else None


def test_secrets_are_generated_when_no_existing_secret_is_given() -> None:
    objects = render(EXTERNAL)
    secret = one(objects, "Secret")
    assert secret["metadata"]["name"] == FULLNAME
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    data = secret_data(secret)
    assert set(data) == {"identity-secret", "admin-token", "redis-url"}
    assert re.fullmatch(r"[A-Za-z0-9]{64}", data["identity-secret"])
    assert len(data["admin-token"]) >= 32
    assert data["redis-url"] == EXTERNAL["redis"]["url"]
    env = container_env(objects, sidecar_container(objects))
    assert env["MAC_IDENTITY_SECRET"] == {"secret": (FULLNAME, "identity-secret")}
    assert env["MAC_ADMIN_TOKEN_FILE"] == {"value": ADMIN_TOKEN_FILE}
    assert admin_token_volume(objects) == {
        "secretName": FULLNAME,
        "defaultMode": 0o444,
        "items": [{"key": "admin-token", "path": "admin-token"}],
    }
    assert env["MAC_REDIS_URL"] == {"secret": (FULLNAME, "redis-url")}


def test_each_install_generates_its_own_secrets() -> None:
    first, second = (secret_data(one(render(DEFAULT), "Secret")) for _ in range(2))
    assert first["identity-secret"] != second["identity-secret"]
    assert first["admin-token"] != second["admin-token"]
    assert first["redis-password"] != second["redis-password"]


def test_no_secret_is_rendered_when_every_secret_exists() -> None:
    objects = render_case("existing-secrets")
    assert find(objects, "Secret") == []
    env = container_env(objects, sidecar_container(objects))
    assert env["MAC_IDENTITY_SECRET"] == {"secret": ("mac-identity", "secret")}
    assert env["MAC_ADMIN_TOKEN"] == {"secret": ("mac-admin", "token")}
    assert env["MAC_REDIS_URL"] == {"secret": ("mac-redis", "url")}
    assert env["MAC_WEBHOOK_URL"] == {"secret": ("mac-webhook", "url")}
    assert env["MAC_WEBHOOK_SECRET"] == {"secret": ("mac-webhook", "signing-secret")}


def test_only_the_missing_secrets_are_generated() -> None:
    values = merge(EXTERNAL, {"identitySecret": {"existingSecret": "mine"}})
    objects = render(values)
    assert set(secret_data(one(objects, "Secret"))) == {"admin-token", "redis-url"}
    env = container_env(objects, sidecar_container(objects))
    assert env["MAC_IDENTITY_SECRET"] == {"secret": ("mine", "identity-secret")}


def test_an_upgrade_never_generates_a_new_identity_secret() -> None:
    # offline, `lookup` finds no Secret: as on an upgrade whose Secret is gone
    with pytest.raises(helm.HelmRenderError, match="will not generate a new one"):
        render(DEFAULT, is_install=False, is_upgrade=True)
    existing = merge(DEFAULT, {"identitySecret": {"existingSecret": "mine"}})
    assert find(render(existing, is_install=False, is_upgrade=True), "Secret")


def test_the_identity_secret_can_be_a_file() -> None:
    objects = render_case("full-features")
    c = sidecar_container(objects)
    env = container_env(objects, c)
    assert "MAC_IDENTITY_SECRET" not in env
    assert env["MAC_IDENTITY_SECRET_FILE"] == {"value": "/etc/mac-sidecar/identity/identity-secret"}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "mac-sidecar-identity")
    assert mount == {
        "name": "mac-sidecar-identity",
        "mountPath": "/etc/mac-sidecar/identity",
        "readOnly": True,
    }
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if v["name"] == "mac-sidecar-identity")
    assert volume["secret"]["secretName"] == FULLNAME
    assert volume["secret"]["items"] == [{"key": "identity-secret", "path": "identity-secret"}]


def test_admin_token_can_be_turned_off() -> None:
    objects = render(merge(DEFAULT, {"adminToken": {"enabled": False}}))
    assert "admin-token" not in secret_data(one(objects, "Secret"))
    env = container_env(objects, sidecar_container(objects))
    assert "MAC_ADMIN_TOKEN" not in env
    assert "MAC_ADMIN_TOKEN_FILE" not in env
    assert admin_token_volume(objects) is None
    assert all(
        m["name"] != "mac-sidecar-admin-token" for m in sidecar_container(objects)["volumeMounts"]
    )


def test_the_admin_token_is_a_file_read_again_when_the_secret_changes() -> None:
    objects = render(
        merge(DEFAULT, {"adminToken": {"existingSecret": "ops", "existingSecretKey": "t"}})
    )
    c = sidecar_container(objects)
    env = container_env(objects, c)
    assert env["MAC_ADMIN_TOKEN_FILE"] == {"value": ADMIN_TOKEN_FILE}
    assert "MAC_ADMIN_TOKEN" not in env
    # a whole Secret volume, not a subPath mount: the kubelet updates it when the Secret changes
    mount = next(m for m in c["volumeMounts"] if m["name"] == "mac-sidecar-admin-token")
    assert mount == {
        "name": "mac-sidecar-admin-token",
        "mountPath": "/etc/mac-sidecar/admin-token",
        "readOnly": True,
    }
    assert admin_token_volume(objects) == {
        "secretName": "ops",
        "defaultMode": 0o444,
        "items": [{"key": "t", "path": "admin-token"}],
    }


def test_the_admin_token_can_still_be_a_variable() -> None:
    objects = render(merge(DEFAULT, {"adminToken": {"asFile": False}}))
    env = container_env(objects, sidecar_container(objects))
    assert env["MAC_ADMIN_TOKEN"] == {"secret": (FULLNAME, "admin-token")}
    assert "MAC_ADMIN_TOKEN_FILE" not in env
    assert admin_token_volume(objects) is None


def test_the_bundled_redis_password_is_generated_into_the_secret() -> None:
    for objects in (render(DEFAULT), render_case("bundled-redis")):
        data = secret_data(one(objects, "Secret"))
        password = data["redis-password"]
        assert re.fullmatch(r"[A-Za-z0-9]{40}", password)
        assert data["redis-auth.conf"] == f"requirepass {password}\n"
        assert data["redis-url"] == f"redis://:{password}@{FULLNAME}-redis:6379/0"
        env = container_env(objects, sidecar_container(objects))
        assert env["MAC_REDIS_URL"] == {"secret": (FULLNAME, "redis-url")}
        # in no ConfigMap
        for config_map in find(objects, "ConfigMap"):
            assert password not in str(config_map["data"]), config_map["metadata"]["name"]


def test_an_external_redis_needs_no_password_of_the_chart() -> None:
    data = secret_data(one(render(EXTERNAL), "Secret"))
    assert not {"redis-password", "redis-auth.conf"} & set(data)


def test_webhook_url_and_generated_signing_secret_are_in_the_secret() -> None:
    objects = render_case("full-features")
    data = secret_data(one(objects, "Secret"))
    url = case_values("full-features")["webhook"]["url"]
    assert data["webhook-url"] == url
    assert re.fullmatch(r"[A-Za-z0-9]{48}", data["webhook-secret"])
    env = container_env(objects, sidecar_container(objects))
    assert env["MAC_WEBHOOK_URL"] == {"secret": (FULLNAME, "webhook-url")}
    assert env["MAC_WEBHOOK_SECRET"] == {"secret": (FULLNAME, "webhook-secret")}
    for config_map in find(objects, "ConfigMap"):
        text = str(config_map["data"])
        assert url not in text
        assert data["webhook-secret"] not in text


def test_a_given_webhook_secret_or_one_of_yours() -> None:
    url = "https://hooks.example.com/mac"
    given = render(merge(EXTERNAL, {"webhook": {"url": url, "secret": "x" * 40}}))
    assert secret_data(one(given, "Secret"))["webhook-secret"] == "x" * 40
    yours = render(merge(EXTERNAL, {"webhook": {"url": url, "existingSecret": "hooks"}}))
    data = secret_data(one(yours, "Secret"))
    assert data["webhook-url"] == url
    assert "webhook-secret" not in data
    env = container_env(yours, sidecar_container(yours))
    assert env["MAC_WEBHOOK_SECRET"] == {"secret": ("hooks", "webhook-secret")}
    assert env["MAC_WEBHOOK_URL"] == {"secret": (FULLNAME, "webhook-url")}


def test_no_webhook_settings_without_a_url() -> None:
    objects = render(DEFAULT)
    env = container_env(objects, sidecar_container(objects))
    assert "MAC_WEBHOOK_URL" not in env
    assert "MAC_WEBHOOK_SECRET" not in env
    assert not {"webhook-url", "webhook-secret"} & set(secret_data(one(objects, "Secret")))


def _installed_secret(values: dict[str, Any]) -> Obj:
    """The Secret as a first install renders it, as it would then be in the cluster."""
    return one(objects_of(render_raw(values)), "Secret")


@pytest.mark.parametrize("case", ["default", "external-redis", "bundled-redis", "full-features"])
def test_upgrades_keep_the_generated_secrets(case: str) -> None:
    values = case_values(case)
    installed = _installed_secret(values)
    with fake_cluster([installed]) as cluster:
        upgraded = cluster.render(values, is_install=False, is_upgrade=True)
    assert f"/api/v1/namespaces/mac/secrets/{FULLNAME}" in cluster.requests
    secret = one(objects_of(upgraded), "Secret")
    assert secret_data(secret) == secret_data(installed)


def test_an_upgrade_adds_a_missing_key_and_keeps_the_rest() -> None:
    installed = _installed_secret(merge(DEFAULT, {"adminToken": {"enabled": False}}))
    with fake_cluster([installed]) as cluster:
        upgraded = secret_data(one(objects_of(cluster.render(DEFAULT, is_upgrade=True)), "Secret"))
    assert upgraded["identity-secret"] == secret_data(installed)["identity-secret"]
    assert len(upgraded["admin-token"]) >= 32


def test_an_upgrade_against_a_cluster_without_the_secret_fails() -> None:
    with (
        fake_cluster([]) as cluster,
        pytest.raises(helm.HelmRenderError, match="Restore the Secret"),
    ):
        cluster.render(DEFAULT, is_install=False, is_upgrade=True)


def test_an_upgrade_from_the_bundled_redis_of_chart_0_1_keeps_its_password() -> None:
    # chart 0.1 kept the password (and the URL) but had no redis-auth.conf
    installed = _installed_secret(DEFAULT)
    password = secret_data(installed)["redis-password"]
    del installed["data"]["redis-auth.conf"]
    with fake_cluster([installed]) as cluster:
        upgraded = secret_data(one(objects_of(cluster.render(DEFAULT, is_upgrade=True)), "Secret"))
    assert upgraded["redis-password"] == password
    assert upgraded["redis-auth.conf"] == f"requirepass {password}\n"
    assert upgraded["redis-url"] == f"redis://:{password}@{FULLNAME}-redis:6379/0"

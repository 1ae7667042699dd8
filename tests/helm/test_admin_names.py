"""Named admins from a Secret, names from client certificates, and an Admin service without a
token kept inside the pod."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from sidecar.server.admins import admin_access
from sidecar.settings import Settings
from tests.helm.chart import (
    Obj,
    case_values,
    container_env,
    merge,
    one,
    render,
    render_case,
    secret_data,
    sidecar_container,
)

DEFAULT = case_values("default")
TOKENS_FILE = "/etc/mac-sidecar/admin-tokens/admin-tokens"
NO_TOKEN = {"adminToken": {"enabled": False}}


def _volume(objects: list[Obj], name: str) -> Obj | None:
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    found = [v for v in spec["volumes"] if v["name"] == name]
    return found[0] if found else None


def _settings(objects: list[Obj]) -> dict[str, Any]:
    env = container_env(objects, sidecar_container(objects))
    return {name: source["value"] for name, source in env.items() if "value" in source}


def test_the_tokens_file_comes_from_a_secret_read_again_when_it_changes() -> None:
    objects = render(merge(DEFAULT, {"adminTokens": {"existingSecret": "ops-admins"}}))
    container = sidecar_container(objects)
    env = container_env(objects, container)
    assert env["MAC_ADMIN_TOKENS_FILE"] == {"value": TOKENS_FILE}
    # a whole Secret volume, not a subPath mount: the kubelet updates it when the Secret changes
    mount = next(m for m in container["volumeMounts"] if m["name"] == "mac-sidecar-admin-tokens")
    assert mount == {
        "name": "mac-sidecar-admin-tokens",
        "mountPath": "/etc/mac-sidecar/admin-tokens",
        "readOnly": True,
    }
    assert "subPath" not in mount
    assert _volume(objects, "mac-sidecar-admin-tokens") == {
        "name": "mac-sidecar-admin-tokens",
        "secret": {
            "secretName": "ops-admins",
            "defaultMode": 0o444,
            "items": [{"key": "admin-tokens", "path": "admin-tokens"}],
        },
    }
    # beside the admin token, which stays the admin 'admin'
    assert env["MAC_ADMIN_TOKEN_FILE"] == {"value": "/etc/mac-sidecar/admin-token/admin-token"}
    assert "admin-tokens" not in secret_data(one(objects, "Secret"))


def test_without_named_admins_nothing_is_mounted() -> None:
    objects = render(DEFAULT)
    assert "MAC_ADMIN_TOKENS_FILE" not in container_env(objects, sidecar_container(objects))
    assert _volume(objects, "mac-sidecar-admin-tokens") is None


def test_full_features_names_admins_by_token_and_by_certificate() -> None:
    objects = render_case("full-features")
    env = _settings(objects)
    assert env["MAC_ADMIN_TOKENS_FILE"] == TOKENS_FILE
    assert env["MAC_ADMIN_NAMES_FROM_CERT"] == "true"
    assert env["MAC_AUDIT_RETENTION_DAYS"] == "730"
    assert env["MAC_ADMIN_ADDR"] == "0.0.0.0:50052"
    volume = _volume(objects, "mac-sidecar-admin-tokens")
    assert volume is not None
    assert volume["secret"]["items"] == [{"key": "tokens", "path": "admin-tokens"}]


@pytest.mark.parametrize(
    "values",
    [
        {"config": {"adminNamesFromCert": True}},
        {"config": {"adminNamesFromCert": True}, "tls": {"enabled": True, "secretName": "t"}},
    ],
)
def test_names_from_certificates_need_mtls(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"config\.adminNamesFromCert needs mTLS"):
        render(merge(DEFAULT, values))


def test_without_any_admin_token_the_admin_service_stays_in_the_pod() -> None:
    objects = render(merge(DEFAULT, NO_TOKEN))
    env = _settings(objects)
    assert env["MAC_ADMIN_ADDR"] == "127.0.0.1:50052"
    assert env["MAC_GRPC_ADDR"] == "0.0.0.0:50051"
    # the sidecar starts with these settings: its Admin service on loopback only
    settings = Settings(
        identity_secret="s" * 32, grpc_addr=env["MAC_GRPC_ADDR"], admin_addr=env["MAC_ADMIN_ADDR"]
    )
    assert not admin_access(settings).secured
    with pytest.raises(helm.HelmRenderError, match=r"set admin\.port, or give the Admin service"):
        render(merge(DEFAULT, {**NO_TOKEN, "admin": {"port": 0}}))


@pytest.mark.parametrize(
    "values",
    [
        {**NO_TOKEN, "adminTokens": {"existingSecret": "ops-admins"}},
        {
            **NO_TOKEN,
            "config": {"adminNamesFromCert": True},
            "tls": {"enabled": True, "secretName": "t", "clientAuth": True},
        },
    ],
)
def test_named_admins_without_the_admin_token_listen_beyond_the_pod(
    values: dict[str, Any],
) -> None:
    env = _settings(render(merge(DEFAULT, values)))
    assert env["MAC_ADMIN_ADDR"] == "0.0.0.0:50052"
    assert "MAC_ADMIN_TOKEN_FILE" not in env

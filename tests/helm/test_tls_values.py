"""TLS values: the certificate Secret mounted and the MAC_TLS_* settings pointing at it, the
cert-manager Certificate, HTTP probes, the `helm test` Pod over TLS; and the rendered settings
serving TLS and mTLS from files laid out as the kubelet writes a Secret volume, rotated the way
it rotates them."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest

from sidecar.server.app import Sidecar
from sidecar.settings import Settings
from tests.helm.chart import (
    CERT_MANAGER,
    FULLNAME,
    NAMESPACE,
    Obj,
    case_values,
    check_certificate,
    container_env,
    example_chart,
    find,
    merge,
    notes,
    one,
    render,
    render_case,
    sidecar_container,
)
from tests.support.certificates import Pair, issue, make_ca
from tests.support.redis_servers import RedisServer

DEFAULT = case_values("default")
TLS = merge(DEFAULT, {"tls": {"enabled": True, "secretName": "mac-tls"}})
MTLS = merge(TLS, {"tls": {"clientAuth": True}})
CERT_MANAGER_VALUES = merge(
    DEFAULT,
    {"tls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}},
)
SERVICE_NAME = f"{FULLNAME}.{NAMESPACE}.svc"
MOUNT = "/etc/mac-sidecar/"


def _pod_spec(objects: list[Obj]) -> Obj:
    spec: Obj = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def _volume(spec: Obj, name: str) -> Obj | None:
    return next((v for v in spec["volumes"] if v["name"] == name), None)


def _settings_of(objects: list[Obj]) -> dict[str, str]:
    env = container_env(objects, sidecar_container(objects))
    return {k: str(v["value"]) for k, v in env.items() if "value" in v}


# -- rendering -------------------------------------------------------------------------------


def test_no_tls_by_default() -> None:
    objects = render(DEFAULT)
    settings = _settings_of(objects)
    assert not {k for k in settings if "TLS" in k}
    assert _volume(_pod_spec(objects), "mac-sidecar-tls") is None
    assert find(objects, "Certificate") == []
    assert "no TLS" in notes(DEFAULT)


def test_tls_mounts_the_secret_and_points_the_settings_at_it() -> None:
    objects = render(TLS)
    settings = _settings_of(objects)
    assert settings["MAC_TLS_CERT_FILE"] == "/etc/mac-sidecar/tls/tls.crt"
    assert settings["MAC_TLS_KEY_FILE"] == "/etc/mac-sidecar/tls/tls.key"
    assert "MAC_TLS_CLIENT_CA_FILE" not in settings
    assert "MAC_ADMIN_TLS_CERT_FILE" not in settings
    # the CLI in the pod trusts the Secret's CA and checks the Service's name
    assert settings["MAC_CLI_TLS_CA"] == "/etc/mac-sidecar/tls/ca.crt"
    assert settings["MAC_CLI_TLS_SERVER_NAME"] == SERVICE_NAME
    assert "MAC_CLI_TLS_CERT" not in settings
    mount = next(
        m for m in sidecar_container(objects)["volumeMounts"] if m["name"] == "mac-sidecar-tls"
    )
    assert mount == {
        "name": "mac-sidecar-tls",
        "mountPath": "/etc/mac-sidecar/tls",
        "readOnly": True,
    }
    assert _volume(_pod_spec(objects), "mac-sidecar-tls") == {
        "name": "mac-sidecar-tls",
        "secret": {"secretName": "mac-tls", "defaultMode": 0o444},
    }
    assert find(objects, "Certificate") == []


def test_client_auth_asks_for_certificates_signed_by_the_secrets_ca() -> None:
    settings = _settings_of(render(MTLS))
    assert settings["MAC_TLS_CLIENT_CA_FILE"] == "/etc/mac-sidecar/tls/ca.crt"
    assert settings["MAC_CLI_TLS_CERT"] == "/etc/mac-sidecar/tls/tls.crt"
    assert settings["MAC_CLI_TLS_KEY"] == "/etc/mac-sidecar/tls/tls.key"
    assert "(gRPC, package mac.v1, mTLS)" in notes(MTLS)


def test_the_admin_listener_can_have_its_own_certificate() -> None:
    values = merge(TLS, {"tls": {"admin": {"enabled": True, "secretName": "ops-tls"}}})
    objects = render(values)
    settings = _settings_of(objects)
    assert settings["MAC_ADMIN_TLS_CERT_FILE"] == "/etc/mac-sidecar/admin-tls/tls.crt"
    assert settings["MAC_ADMIN_TLS_KEY_FILE"] == "/etc/mac-sidecar/admin-tls/tls.key"
    volume = _volume(_pod_spec(objects), "mac-sidecar-admin-tls")
    assert volume is not None
    assert volume["secret"]["secretName"] == "ops-tls"
    mounts = {m["name"]: m for m in sidecar_container(objects)["volumeMounts"]}
    assert mounts["mac-sidecar-admin-tls"]["mountPath"] == "/etc/mac-sidecar/admin-tls"
    assert mounts["mac-sidecar-admin-tls"]["readOnly"] is True


@pytest.mark.parametrize("probe_type", ["grpc", "http"])
def test_tls_turns_every_probe_into_http(probe_type: str) -> None:
    probes = {name: {"type": probe_type} for name in ("startup", "liveness", "readiness")}
    c = sidecar_container(render(merge(TLS, {"probes": probes})))
    assert c["startupProbe"]["httpGet"] == {"path": "/livez", "port": 9464}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": 9464}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": 9464}
    assert all("grpc" not in c[p] for p in ("startupProbe", "livenessProbe", "readinessProbe"))


def test_tls_with_the_metrics_port_off_needs_the_probes_off() -> None:
    with pytest.raises(
        helm.HelmRenderError, match=r"with tls\.enabled probes\.\w+ is an HTTP probe"
    ):
        render(merge(TLS, {"metrics": {"enabled": False}}))
    off = {name: {"enabled": False} for name in ("startup", "liveness", "readiness")}
    c = sidecar_container(render(merge(TLS, {"metrics": {"enabled": False}, "probes": off})))
    assert not {"startupProbe", "livenessProbe", "readinessProbe"} & set(c)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"tls": {"enabled": True}}, r"tls\.enabled needs tls\.secretName"),
        (
            {"tls": {"enabled": True, "certManager": {"enabled": True}}},
            r"needs tls\.certManager\.issuerRef\.name",
        ),
        ({"tls": {"clientAuth": True}}, r"tls\.clientAuth needs tls\.enabled"),
        (
            {"tls": {"certManager": {"enabled": True}}},
            r"tls\.certManager\.enabled needs tls\.enabled",
        ),
        ({"tls": {"admin": {"enabled": True}}}, r"tls\.admin\.enabled needs tls\.enabled"),
        (
            {"tls": {"enabled": True, "secretName": "s", "admin": {"enabled": True}}},
            r"tls\.admin\.enabled needs tls\.admin\.secretName",
        ),
        (
            {
                "admin": {"port": 0},
                "tls": {
                    "enabled": True,
                    "secretName": "s",
                    "admin": {"enabled": True, "secretName": "a"},
                },
            },
            r"tls\.admin\.enabled needs admin\.port",
        ),
    ],
)
def test_incomplete_tls_values_are_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(merge(DEFAULT, values))


def test_cert_manager_issues_the_certificate_for_the_service() -> None:
    objects = render(CERT_MANAGER_VALUES)
    certificate = one(objects, "Certificate")
    check_certificate(certificate)
    assert certificate["apiVersion"] == CERT_MANAGER
    spec = certificate["spec"]
    assert spec["secretName"] == f"{FULLNAME}-tls"
    assert spec["issuerRef"] == {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"}
    assert spec["dnsNames"] == [
        FULLNAME,
        f"{FULLNAME}.{NAMESPACE}",
        SERVICE_NAME,
        f"{SERVICE_NAME}.cluster.local",
        "localhost",
    ]
    assert spec["ipAddresses"] == ["127.0.0.1"]
    assert {"server auth", "client auth"} <= set(spec["usages"])
    assert "key encipherment" not in spec["usages"]  # an ECDSA key enciphers nothing
    assert spec["privateKey"] == {
        "algorithm": "ECDSA",
        "size": 256,
        "encoding": "PKCS8",
        "rotationPolicy": "Always",
    }
    # the pods mount the Secret the Certificate writes
    volume = _volume(_pod_spec(objects), "mac-sidecar-tls")
    assert volume is not None
    assert volume["secret"]["secretName"] == spec["secretName"]
    pod = one(objects, "Pod")
    assert pod["spec"]["volumes"][0]["secret"]["secretName"] == spec["secretName"]


def test_cert_manager_values_reach_the_certificates() -> None:
    values = merge(
        CERT_MANAGER_VALUES,
        {
            "tls": {
                "secretName": "mine",
                "admin": {"enabled": True},
                "certManager": {
                    "issuerRef": {"name": "corp", "kind": "ClusterIssuer"},
                    "duration": "720h",
                    "renewBefore": "240h",
                    "dnsNames": ["mac.example.internal", "localhost"],
                    "clusterDomain": "k8s.example",
                    "privateKey": {"algorithm": "RSA", "size": 3072},
                },
            }
        },
    )
    objects = render(values)
    main, admin = find(objects, "Certificate")
    for certificate in (main, admin):
        check_certificate(certificate)
        spec = certificate["spec"]
        assert spec["issuerRef"]["kind"] == "ClusterIssuer"
        assert (spec["duration"], spec["renewBefore"]) == ("720h", "240h")
        assert f"{SERVICE_NAME}.k8s.example" in spec["dnsNames"]
        assert spec["dnsNames"].count("localhost") == 1
        assert spec["dnsNames"][-1] == "mac.example.internal"
        assert spec["privateKey"]["size"] == 3072
        assert "key encipherment" in spec["usages"]
    assert (main["metadata"]["name"], main["spec"]["secretName"]) == (FULLNAME, "mine")
    assert (admin["metadata"]["name"], admin["spec"]["secretName"]) == (
        f"{FULLNAME}-admin",
        f"{FULLNAME}-admin-tls",
    )
    spec = _pod_spec(objects)
    for name, secret in (
        ("mac-sidecar-tls", "mine"),
        ("mac-sidecar-admin-tls", f"{FULLNAME}-admin-tls"),
    ):
        volume = _volume(spec, name)
        assert volume is not None
        assert volume["secret"]["secretName"] == secret
    ed25519 = merge(
        CERT_MANAGER_VALUES, {"tls": {"certManager": {"privateKey": {"algorithm": "Ed25519"}}}}
    )
    assert "size" not in one(render(ed25519), "Certificate")["spec"]["privateKey"]


def test_the_certificate_check_is_strict() -> None:
    certificate = one(render(CERT_MANAGER_VALUES), "Certificate")
    for broken in (
        merge(certificate, {"spec": {"dnsNames": ["Not_A_Name"]}}),
        merge(certificate, {"spec": {"usages": ["anything"]}}),
        merge(certificate, {"spec": {"commonNames": ["x"]}}),
        merge(certificate, {"spec": {"duration": "90 days"}}),
    ):
        with pytest.raises(AssertionError):
            check_certificate(broken)


def test_the_helm_test_pod_speaks_tls() -> None:
    pod = one(render(MTLS), "Pod")
    (c,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["HEALTH_TLS_DIR"] == "/etc/mac-sidecar/tls"
    assert env["HEALTH_TLS_SERVER_NAME"] == SERVICE_NAME
    assert env["HEALTH_TLS_CLIENT_CERT"] == "true"
    assert c["volumeMounts"] == [
        {"name": "mac-sidecar-tls", "mountPath": "/etc/mac-sidecar/tls", "readOnly": True}
    ]
    assert pod["spec"]["volumes"] == [
        {"name": "mac-sidecar-tls", "secret": {"secretName": "mac-tls", "defaultMode": 0o444}}
    ]
    assert c["command"][-1] == f"{SERVICE_NAME}:50051"
    plain = one(render(DEFAULT), "Pod")["spec"]
    assert "volumes" not in plain
    assert not any(e["name"].startswith("HEALTH_TLS") for e in plain["containers"][0]["env"])


def test_the_server_name_can_be_given() -> None:
    values = merge(MTLS, {"tls": {"serverName": "mac.example.internal"}})
    objects = render(values)
    assert _settings_of(objects)["MAC_CLI_TLS_SERVER_NAME"] == "mac.example.internal"
    (c,) = one(objects, "Pod")["spec"]["containers"]
    assert {"name": "HEALTH_TLS_SERVER_NAME", "value": "mac.example.internal"} in c["env"]


def test_tls_in_sidecar_mode_reaches_the_routing_pods(tmp_path: Path) -> None:
    values = merge(
        case_values("sidecar-mode"),
        {"tls": {"enabled": True, "certManager": {"enabled": True, "issuerRef": {"name": "ca"}}}},
    )
    objects = render(values)
    certificate = one(objects, "Certificate")
    check_certificate(certificate)
    assert certificate["spec"]["dnsNames"] == ["localhost"]
    config = one(objects, "ConfigMap", FULLNAME)["data"]
    assert config["MAC_CLI_TLS_SERVER_NAME"] == "localhost"
    assert config["MAC_TLS_CERT_FILE"] == "/etc/mac-sidecar/tls/tls.crt"
    # the parent chart's pod gets the volumes through "mac-sidecar.volumes"
    parent = example_chart(tmp_path)
    parent_objects = render({"mac-sidecar": values}, chart=parent)
    spec = one(parent_objects, "Deployment")["spec"]["template"]["spec"]
    volume = _volume(spec, "mac-sidecar-tls")
    assert volume is not None
    assert volume["secret"]["secretName"] == f"{FULLNAME}-tls"
    assert _volume(spec, "mac-sidecar-admin-token") is not None
    sidecar = next(c for c in spec["containers"] if c["name"] == "mac-sidecar")
    assert sidecar["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {m["name"] for m in sidecar["volumeMounts"]} >= {
        "mac-sidecar-tls",
        "mac-sidecar-admin-token",
    }


def test_full_features_serves_mtls_with_certificates_from_cert_manager() -> None:
    objects = render_case("full-features")
    assert len(find(objects, "Certificate")) == 2
    settings = _settings_of(objects)
    assert settings["MAC_TLS_CLIENT_CA_FILE"] == "/etc/mac-sidecar/tls/ca.crt"
    assert settings["MAC_ADMIN_TLS_CERT_FILE"] == "/etc/mac-sidecar/admin-tls/tls.crt"
    assert settings["MAC_MAX_CONCURRENT_RPCS"] == "1000"
    assert settings["MAC_MAX_STREAMS"] == "64"


# -- the rendered settings, served -------------------------------------------------------------


class SecretVolume:
    """A directory laid out as the kubelet writes a Secret volume: each file a symlink through
    ``..data`` to a directory of the version, and an update a new directory swapped in by
    renaming ``..data``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True)
        self._version = 0

    def write(self, files: dict[str, bytes]) -> None:
        self._version += 1
        version = self.root / f"..2026_11_15_12_00_0{self._version}.000000001"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_bytes(content)
        data = self.root / "..data"
        previous = data.resolve() if data.is_symlink() else None
        fresh = self.root / "..data_tmp"
        fresh.symlink_to(version.name)
        os.replace(fresh, data)
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")
        if previous is not None:
            shutil.rmtree(previous)


@dataclass
class Volumes:
    """The Secret volumes of the pod, under a local root standing for /etc/mac-sidecar."""

    root: Path
    tls: SecretVolume
    token: SecretVolume

    def local(self, path: str) -> str:
        assert path.startswith(MOUNT), path
        return str(self.root / path.removeprefix(MOUNT))


def _tls_files(ca: Pair, server: Pair) -> dict[str, bytes]:
    return {
        "tls.crt": server.cert.read_bytes(),
        "tls.key": server.key.read_bytes(),
        "ca.crt": ca.cert.read_bytes(),
    }


# what the chart's Certificate asks for: the Service's names, localhost, both usages
CHART_CERT_EXT = (
    f"subjectAltName=DNS:{SERVICE_NAME},DNS:localhost,IP:127.0.0.1\n"
    "extendedKeyUsage=serverAuth,clientAuth\n"
)


@dataclass
class Served:
    sidecar: Sidecar
    objects: list[Obj]
    volumes: Volumes
    pki: dict[str, Pair]


@pytest.fixture
async def served(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Served]:
    """The sidecar started with the settings the chart renders for mTLS (the admin token a
    file), its volumes' paths mapped to local Secret volumes."""
    if shutil.which("openssl") is None:  # pragma: no cover - the dev image has it
        pytest.skip("needs the openssl command")
    pki_dir = tmp_path / "pki"
    pki_dir.mkdir()
    pki: dict[str, Pair] = {}
    for n in ("1", "2"):
        pki[f"ca{n}"] = make_ca(pki_dir, f"ca{n}")
        pki[f"server{n}"] = issue(pki_dir, pki[f"ca{n}"], f"server{n}", CHART_CERT_EXT)
    root = tmp_path / "etc-mac-sidecar"
    volumes = Volumes(root, SecretVolume(root / "tls"), SecretVolume(root / "admin-token"))
    volumes.tls.write(_tls_files(pki["ca1"], pki["server1"]))
    volumes.token.write({"admin-token": b"first-token"})

    objects = render(MTLS)
    environ: dict[str, str] = {}
    for name, source in container_env(objects, sidecar_container(objects)).items():
        if "value" in source:
            value = str(source["value"])
            environ[name] = volumes.local(value) if value.startswith(MOUNT) else value
    environ.update(
        MAC_REDIS_URL=redis_server.url,
        MAC_IDENTITY_SECRET="s" * 32,
        MAC_GRPC_ADDR="127.0.0.1:0",
        MAC_ADMIN_ADDR="127.0.0.1:0",
        MAC_METRICS_ADDR="127.0.0.1:0",
        MAC_SHUTDOWN_GRACE="0.5",
    )
    assert "MAC_ADMIN_TOKEN" not in environ
    sidecar = Sidecar(Settings.from_env(environ))
    await sidecar.start()
    try:
        yield Served(sidecar, objects, volumes, pki)
    finally:
        await sidecar.stop()


async def _run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, output.decode()


async def _helm_test(served: Served) -> tuple[int, str]:
    """The `helm test` Pod's script and environment as rendered, its mount mapped, pointed at
    the local sidecar."""
    (c,) = one(served.objects, "Pod")["spec"]["containers"]
    env = {e["name"]: e["value"] for e in c["env"]}
    env["HEALTH_TLS_DIR"] = served.volumes.local(env["HEALTH_TLS_DIR"])
    return await _run(*c["command"][1:-1], f"127.0.0.1:{served.sidecar.port}", env=env)


async def _cli(served: Served, *args: str) -> tuple[int, str]:
    """The CLI in the pod: the rendered MAC_CLI_* and token file variables, mapped."""
    env = {
        "MAC_GRPC_ADDR": f"127.0.0.1:{served.sidecar.port}",
        "MAC_ADMIN_ADDR": f"127.0.0.1:{served.sidecar.admin_port}",
        "MAC_ADMIN_TOKEN": "",
    }
    for name, value in _settings_of(served.objects).items():
        if name.startswith("MAC_CLI_") or name == "MAC_ADMIN_TOKEN_FILE":
            env[name] = served.volumes.local(value) if value.startswith(MOUNT) else value
    return await _run("-m", "sidecar", *args, env=env)


def _get(port: int, path: str) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return int(reply.status)


async def test_the_rendered_mtls_settings_serve_the_hook_the_cli_and_the_probes(
    served: Served,
) -> None:
    assert await _helm_test(served) == (0, f"127.0.0.1:{served.sidecar.port}: SERVING\n")
    code, output = await _cli(served, "usage", "acme")
    assert code == 0, output
    assert "0 of 100 active" in output
    code, output = await _cli(served, "activate", "acme", "--id", "crm-1")
    assert code == 0, output
    # the probes the chart renders with TLS: plain HTTP on the metrics port
    c = sidecar_container(served.objects)
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        path = c[probe]["httpGet"]["path"]
        assert await asyncio.to_thread(_get, served.sidecar.metrics_port, path) == 200


async def test_a_rotated_secret_volume_takes_effect_without_a_restart(served: Served) -> None:
    # cert-manager renews the certificate with a new CA; the kubelet swaps the volume's files
    served.volumes.tls.write(_tls_files(served.pki["ca2"], served.pki["server2"]))
    served.volumes.token.write({"admin-token": b"second-token"})
    assert await _helm_test(served) == (0, f"127.0.0.1:{served.sidecar.port}: SERVING\n")
    code, output = await _cli(served, "usage", "acme")  # reads the new token from its file
    assert code == 0, output
    code, output = await _cli(served, "usage", "acme", "--token", "first-token")
    assert code == 2
    assert "UNAUTHENTICATED" in output
    assert served.sidecar.tls is not None
    assert served.sidecar.tls.enforcer.generation == 1


def test_the_native_engine_is_refused_with_tls() -> None:
    """pygrpc-native serves no TLS: the chart refuses the pair, as the sidecar would."""
    values = merge(DEFAULT, {"config": {"grpcEngine": "native"}})
    assert _settings_of(render(values))["MAC_GRPC_ENGINE"] == "native"
    with pytest.raises(helm.HelmRenderError, match=r"config\.grpcEngine native serves no TLS"):
        render(merge(values, {"tls": {"enabled": True, "secretName": "s"}}))

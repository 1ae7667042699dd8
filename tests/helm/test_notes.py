"""The NOTES Helm prints after an install: right for every CI case and any release name."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from tests.helm.chart import (
    CASES,
    NAMESPACE,
    case_values,
    find,
    merge,
    notes,
    objects_of,
    render_raw,
)

# Release names with and without the chart's name in them; their objects' names.
RELEASES = {
    "rel": "rel-mac-sidecar",
    "mac": "mac-mac-sidecar",
    "mac-sidecar": "mac-sidecar",
    "prod-mac-sidecar": "prod-mac-sidecar",
}
_PORT_FORWARD = re.compile(r"port-forward \S+((?: \d+:\d+)+)")
# What NOTES name: workloads and Services (kind/name), Secrets, pods.
_REFERENCES = {
    "Deployment": re.compile(r"\bdeploy/([a-z0-9][-a-z0-9]*)"),
    "Service": re.compile(r"\bsvc/([a-z0-9][-a-z0-9]*)"),
    "Secret": re.compile(r"\bget secret ([a-z0-9][-a-z0-9]*)"),
}


def forwarded_ports(text: str) -> Counter[int]:
    """How often each local port is forwarded by the NOTES' `kubectl port-forward` commands."""
    ports: Counter[int] = Counter()
    for found in _PORT_FORWARD.finditer(text):
        for pair in found[1].split():
            local, remote = pair.split(":")
            assert local == remote, pair
            ports[int(local)] += 1
    return ports


def _existing_secrets(values: dict[str, Any]) -> set[str]:
    """The Secrets of the user's that the values name."""
    names = set()
    for key in ("identitySecret", "adminToken", "redis", "webhook"):
        if (values.get(key) or {}).get("existingSecret"):
            names.add(values[key]["existingSecret"])
    if (values.get("tls") or {}).get("secretName"):
        names.add(values["tls"]["secretName"])
    return names


@pytest.mark.parametrize("case", CASES)
def test_each_port_is_forwarded_once(case: str) -> None:
    values = case_values(case)
    ports = forwarded_ports(notes(values))
    assert ports[50052] == 1, ports  # the Admin port: once, not in two port-forwards
    assert set(ports.values()) == {1}, ports
    assert ports.keys() <= {50051, 50052}
    if values.get("mode") != "sidecar":
        assert ports[50051] == 1


@pytest.mark.parametrize("mode", ["deployment", "sidecar"])
def test_admin_beside_the_enforcer_is_forwarded_once(mode: str) -> None:
    case = "sidecar-mode" if mode == "sidecar" else "default"
    values = merge(case_values(case), {"admin": {"port": 0}})
    text = notes(values)
    assert forwarded_ports(text) == Counter({50051: 1})
    assert "sidecar usage acme --addr 127.0.0.1:50051" in text
    assert "listens on port 50051" in text


@pytest.mark.parametrize("release", sorted(RELEASES))
@pytest.mark.parametrize("case", CASES)
def test_notes_name_the_objects_the_release_has(case: str, release: str) -> None:
    values = case_values(case)
    rendered = render_raw(values, release=release)
    text = rendered["mac-sidecar/templates/NOTES.txt"]
    objects = objects_of(rendered)
    fullname = RELEASES[release]
    assert "mac-sidecar-mac-sidecar" not in text
    assert all("mac-sidecar-mac-sidecar" not in o["metadata"]["name"] for o in objects)
    for kind, pattern in _REFERENCES.items():
        named = set(pattern.findall(text)) - {"<routing-service>"}
        exists = {o["metadata"]["name"] for o in find(objects, kind)}
        if kind == "Secret":  # the user's, and those cert-manager writes for the Certificates
            exists |= _existing_secrets(values)
            exists |= {c["spec"]["secretName"] for c in find(objects, "Certificate")}
        assert named <= exists, (kind, named - exists)
    if values.get("mode") != "sidecar":
        assert f"{fullname}.{NAMESPACE}.svc:50051" in text
        assert f"exec deploy/{fullname} -- sidecar usage acme" in text
        assert f"port-forward svc/{fullname} 50051:50051 &" in text
    assert f"helm test {release} " in text or values.get("mode") == "sidecar"


def test_notes_say_how_to_call_the_service_and_read_usage() -> None:
    text = notes(case_values("default"))
    assert "rel-mac-sidecar.mac.svc:50051" in text
    assert "grpcurl -plaintext 127.0.0.1:50051 grpc.health.v1.Health/Check" in text
    assert "mac.v1.Enforcer/Activate" in text
    assert "exec deploy/rel-mac-sidecar -- sidecar activate acme" in text
    assert "get secret rel-mac-sidecar -o jsonpath='{.data.admin-token}'" in text
    assert "port-forward svc/rel-mac-sidecar 50052:50052 &" in text
    assert "sidecar usage acme --addr 127.0.0.1:50052" in text
    assert "helm test rel" in text
    assert "must never change" in text


def test_notes_in_sidecar_mode_show_the_templates_to_include() -> None:
    text = notes(case_values("sidecar-mode"))
    assert 'include "mac-sidecar.containers" (index .Subcharts "mac-sidecar")' in text
    assert 'include "mac-sidecar.volumes" (index .Subcharts "mac-sidecar")' in text
    assert "127.0.0.1:50051" in text
    assert "port-forward deploy/<routing-service> 50052:50052 &" in text


def test_notes_name_an_existing_admin_token_secret() -> None:
    text = notes(case_values("existing-secrets"))
    assert "get secret mac-admin -o jsonpath='{.data.token}'" in text
    assert "comes from the Secret mac-identity" in text
    assert "Redis: an external one, its URL in the Secret mac-redis (key url)." in text


def test_notes_describe_the_bundled_redis() -> None:
    text = notes(case_values("default"))
    assert "the bundled single-instance Redis rel-mac-sidecar-redis" in text
    assert "maxmemory 768Mi of its 1Gi memory limit, noeviction" in text
    assert "Secret\nrel-mac-sidecar (key redis-password)" in text
    # redis-cli inside the pod takes the password from the file, never from the command line
    assert (
        "exec -it rel-mac-sidecar-redis-0 -- "
        """sh -c 'REDISCLI_AUTH="$(cat /etc/redis/password)" redis-cli'"""
    ) in text
    bundled = notes(case_values("bundled-redis"))
    assert "maxmemory 400Mi of its 512Mi memory limit" in bundled
    external = notes(case_values("external-redis"))
    assert "bundled" not in external
    assert "Redis: an external one, its URL in the Secret rel-mac-sidecar (key redis-url)." in (
        external
    )


def test_notes_say_where_webhooks_go_without_their_token() -> None:
    values = {"webhook": {"url": "https://hooks.example.com/mac/T0K3N?sig=1"}}
    text = notes(values)
    assert "https://hooks.example.com/***" in text
    assert "T0K3N" not in text
    assert "get secret rel-mac-sidecar -o jsonpath='{.data.webhook-secret}'" in text
    assert "generated once and kept" in text
    assert "egress" not in text  # no NetworkPolicy, nothing to say about it
    policed = notes(merge(values, {"networkPolicy": {"enabled": True}}))
    assert "if a policy of yours restricts egress, let the\nsidecar pods reach" in policed
    given = notes(merge(values, {"webhook": {"secret": "s" * 32}}))
    assert "generated" not in given.split("Webhooks:")[1].split("\n\n")[2]
    theirs = notes(case_values("existing-secrets"))
    assert "the URL in the Secret mac-webhook (key url)" in theirs
    assert "get secret mac-webhook -o jsonpath='{.data.signing-secret}'" in theirs
    assert "Webhooks" not in notes(case_values("default"))

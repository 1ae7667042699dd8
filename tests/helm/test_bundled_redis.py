"""The bundled Redis: on with no values, off once an external Redis is named; maxmemory below
its memory limit; its password from the Secret, on no command line. The rendered config and
probes are run against a real redis-server."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import redis

from tests.helm.chart import (
    FULLNAME,
    Obj,
    case_values,
    container_env,
    find,
    merge,
    one,
    render,
    render_case,
    secret_data,
    sidecar_container,
)
from tests.support.redis_servers import free_port

DEFAULT = case_values("default")
REDIS = f"{FULLNAME}-redis"
MI = 1024**2
GI = 1024**3


def redis_container(objects: list[Obj]) -> Obj:
    """The redis container of the bundled Redis's StatefulSet."""
    statefulset = one(objects, "StatefulSet", REDIS)
    container: Obj
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    return container


def redis_conf_text(objects: list[Obj]) -> str:
    text: str = one(objects, "ConfigMap", REDIS)["data"]["redis.conf"]
    return text


def redis_conf(objects: list[Obj]) -> dict[str, str]:
    """The directives of the bundled Redis's redis.conf."""
    directives: dict[str, str] = {}
    for line in redis_conf_text(objects).splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition(" ")
            assert name not in directives, f"{name} twice"
            directives[name] = value
    return directives


def maxmemory(values: dict[str, Any]) -> int:
    return int(redis_conf(render(values))["maxmemory"])


def test_no_values_deploy_the_bundled_redis() -> None:
    objects = render(DEFAULT)
    statefulset = one(objects, "StatefulSet", REDIS)
    container = redis_container(objects)
    assert container["image"] == "docker.io/library/redis:7.4"
    assert container["command"] == ["redis-server"]
    assert container["args"] == ["/etc/redis/redis.conf"]
    conf = redis_conf(objects)
    assert conf["dir"] == "/data"
    assert conf["appendonly"] == "yes"
    assert conf["appendfsync"] == "everysec"
    assert conf["maxmemory-policy"] == "noeviction"
    assert conf["include"] == "/etc/redis/auth.conf"
    assert "requirepass" not in conf
    # maxmemory below the container's memory limit: 75 % of 1Gi
    assert container["resources"]["limits"]["memory"] == "1Gi"
    assert int(conf["maxmemory"]) == 768 * MI
    # AOF on a volume that outlives the release
    assert {"name": "data", "mountPath": "/data"} in container["volumeMounts"]
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
    assert one(objects, "Service", REDIS)["spec"]["ports"][0]["port"] == 6379
    # the sidecar's URL, with the password, from the Secret
    env = container_env(objects, sidecar_container(objects))
    assert env["MAC_REDIS_URL"] == {"secret": (FULLNAME, "redis-url")}
    url = secret_data(one(objects, "Secret"))["redis-url"]
    assert url.endswith(f"@{REDIS}:6379/0")


def test_the_password_is_on_no_command_line_and_in_no_environment() -> None:
    for objects in (render(DEFAULT), render_case("bundled-redis")):
        password = secret_data(one(objects, "Secret"))["redis-password"]
        statefulset = one(objects, "StatefulSet", REDIS)
        assert password not in json.dumps(statefulset)
        container = redis_container(objects)
        assert "env" not in container
        assert "envFrom" not in container
        for probe in ("startupProbe", "readinessProbe"):
            command = container[probe]["exec"]["command"]
            assert command[:2] == ["sh", "-c"]
            assert 'REDISCLI_AUTH="$(cat /etc/redis/password)" redis-cli' in command[2]
        # redis.conf from the ConfigMap, the password files from the Secret, one volume
        spec = statefulset["spec"]["template"]["spec"]
        (volume,) = spec["volumes"]
        sources = volume["projected"]["sources"]
        assert sources[0]["configMap"]["name"] == REDIS
        assert sources[1]["secret"] == {
            "name": FULLNAME,
            "items": [
                {"key": "redis-auth.conf", "path": "auth.conf"},
                {"key": "redis-password", "path": "password"},
            ],
        }
        assert volume["projected"]["defaultMode"] == 0o440  # the redis user's group (fsGroup)
        assert spec["securityContext"]["fsGroup"] == 999
        mount = {"name": volume["name"], "mountPath": "/etc/redis", "readOnly": True}
        assert mount in container["volumeMounts"]


@pytest.mark.parametrize("case", ["external-redis", "existing-secrets", "full-features"])
def test_an_external_redis_switches_the_bundled_one_off(case: str) -> None:
    objects = render_case(case)
    assert find(objects, "StatefulSet") == []
    assert all(o["metadata"]["name"] != REDIS for o in objects)


def test_sidecar_mode_can_bring_the_bundled_redis() -> None:
    values = merge(case_values("sidecar-mode"), {"redis": {"url": ""}})
    objects = render(values)
    assert one(objects, "StatefulSet", REDIS)
    assert secret_data(one(objects, "Secret"))["redis-url"].endswith(f"@{REDIS}:6379/0")


@pytest.mark.parametrize(
    ("limit", "percent", "expected"),
    [
        ("2Gi", 75, 1536 * MI),
        ("512Mi", 50, 256 * MI),
        ("1G", 75, 750_000_000),
        ("1.5Gi", 60, int(1.5 * GI) * 60 // 100),
        (1073741824, 75, 768 * MI),
    ],
)
def test_maxmemory_follows_the_memory_limit(limit: str | int, percent: int, expected: int) -> None:
    bundled = {"resources": {"limits": {"memory": limit}}, "maxmemoryPercent": percent}
    assert maxmemory({"redis": {"bundled": bundled}}) == expected


def test_an_explicit_maxmemory_below_the_limit() -> None:
    objects = render_case("bundled-redis")
    assert int(redis_conf(objects)["maxmemory"]) == 400 * MI
    assert "redis.bundled.maxmemory (400Mi)" in redis_conf_text(objects)
    # without a limit, maxmemory alone bounds Redis
    unlimited = {"redis": {"bundled": {"maxmemory": "300Mi", "resources": {"limits": None}}}}
    assert maxmemory(unlimited) == 300 * MI


@pytest.mark.parametrize(
    ("bundled", "message"),
    [
        ({"maxmemory": "1Gi"}, r"maxmemory \(1Gi\) must be below .*limits.memory \(1Gi\)"),
        ({"maxmemory": "2G"}, "must be below"),
        ({"resources": {"limits": None}}, "needs redis.bundled.resources.limits.memory"),
        ({"resources": {"limits": {"memory": "lots"}}}, '"lots" is not a quantity of bytes'),
    ],
)
def test_maxmemory_must_be_below_the_limit(bundled: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render({"redis": {"bundled": bundled}})


def test_extra_args_follow_the_config_file() -> None:
    container = redis_container(render_case("bundled-redis"))
    assert container["args"] == ["/etc/redis/redis.conf", "--loglevel", "warning"]


def test_a_config_change_restarts_redis() -> None:
    def checksum(values: dict[str, Any]) -> str:
        template = one(render(values), "StatefulSet", REDIS)["spec"]["template"]
        return str(template["metadata"]["annotations"]["checksum/redis-config"])

    assert checksum(DEFAULT) == checksum(DEFAULT)  # not the password's: that is generated
    assert checksum(DEFAULT) != checksum({"redis": {"bundled": {"maxmemoryPercent": 50}}})


# The rendered config and probes, run: paths of the pod rewritten to a temporary directory.


@dataclass
class Running:
    port: int
    etc: Path
    container: Obj
    secret: dict[str, str]
    process: subprocess.Popen[bytes]

    def probe(self, name: str) -> int:
        """The probe's command as the kubelet runs it in the pod (pointed at this port)."""
        command = [
            part.replace("/etc/redis/", f"{self.etc}/").replace(
                "-h 127.0.0.1", f"-h 127.0.0.1 -p {self.port}"
            )
            for part in self.container[name]["exec"]["command"]
        ]
        return subprocess.run(command, check=False, capture_output=True, timeout=10).returncode


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    objects = render(DEFAULT)
    container = redis_container(objects)
    secret = secret_data(one(objects, "Secret"))
    etc, data = tmp_path / "etc", tmp_path / "data"
    etc.mkdir()
    data.mkdir()
    conf = redis_conf_text(objects).replace("/etc/redis/", f"{etc}/")
    (etc / "redis.conf").write_text(conf.replace("\ndir /data\n", f"\ndir {data}\n"))
    (etc / "auth.conf").write_text(secret["redis-auth.conf"])
    (etc / "password").write_text(secret["redis-password"])
    port = free_port()
    args = [a.replace("/etc/redis/", f"{etc}/") for a in container["args"]]
    # on loopback only: the command line's options come after the file's
    command = [*container["command"], *args, "--port", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield Running(port, etc, container, secret, process)
    finally:
        process.terminate()
        process.wait(10)


def _client(running: Running) -> redis.Redis:
    url = running.secret["redis-url"].replace(f"@{REDIS}:6379/", f"@127.0.0.1:{running.port}/")
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            if running.process.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_the_rendered_config_runs_a_redis_that_needs_the_password(running: Running) -> None:
    client = _client(running)  # the sidecar's URL, password included, is let in
    try:
        assert client.config_get("maxmemory") == {"maxmemory": str(768 * MI)}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
    finally:
        client.close()
    anonymous = redis.Redis(port=running.port)
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()
    anonymous.close()


def test_ps_does_not_show_the_password(running: Running) -> None:
    _client(running).close()
    password = running.secret["redis-password"].encode()
    proc = Path(f"/proc/{running.process.pid}")
    assert b"redis-server" in (proc / "cmdline").read_bytes()
    assert password not in (proc / "cmdline").read_bytes()
    assert password not in (proc / "environ").read_bytes()
    shown = subprocess.run(["ps", "-eww", "-o", "args"], capture_output=True, check=True).stdout
    assert password not in shown


def test_the_probes_pass_with_the_password_file_and_fail_without(running: Running) -> None:
    _client(running).close()
    assert running.probe("startupProbe") == 0
    assert running.probe("readinessProbe") == 0
    (running.etc / "password").write_text("not-the-password")
    assert running.probe("readinessProbe") != 0

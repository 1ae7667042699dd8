"""Metrics, probes, logs and worker processes, observed from outside as an operator would."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
import pytest
import redis
from prometheus_client import REGISTRY

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from tests.support.calls import activate
from tests.support.constants import AUTH
from tests.support.redis_servers import RedisServer, free_port
from tests.support.sidecar_process import SidecarProcess
from tests.support.sidecars import SidecarFactory


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback http
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def sample(exposition: str, line_start: str, default: float | None = None) -> float:
    """The value of the first exposition line that starts with ``line_start``."""
    for line in exposition.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    if default is not None:
        return default
    raise AssertionError(f"no sample {line_start} in the exposition")


async def wait_status(url: str, wanted: int) -> None:
    for _ in range(100):
        if (await asyncio.to_thread(get, url))[0] == wanted:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} never answered {wanted}")


async def test_metrics_count_requests_decisions_and_redis(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(metrics_addr="127.0.0.1:0", default_limit=3, metrics_workspaces=5)
    url = f"http://127.0.0.1:{make_sidecar.last.metrics_port}"
    _, before = get(f"{url}/metrics")
    for n in range(5):
        await activate(stub, n, ws="observed")
    status, text = get(f"{url}/metrics")
    assert status == 200
    ok = 'mac_requests_total{code="OK",method="Activate"}'
    assert sample(text, ok) - sample(before, ok, 0) == 5
    denied = 'mac_decisions_total{method="Activate",reason="LIMIT_REACHED"}'
    assert sample(text, denied) - sample(before, denied, 0) == 2
    assert sample(text, 'mac_workspace_active_contacts{workspace="observed"}') == 3
    assert sample(text, 'mac_workspace_utilisation_ratio{workspace="observed"}') == 1
    # 3 counted by 15 Nov 12:00 (14.5 of November's 30 days): 3 x 30 / 14.5
    assert sample(text, 'mac_workspace_forecast_active_contacts{workspace="observed"}') == 6
    channel = 'mac_workspace_channel_active_contacts{channel="unspecified",workspace="observed"}'
    assert sample(text, channel) == 3
    assert sample(text, "mac_redis_up") == 1
    assert sample(text, 'mac_redis_round_trips_total{operation="decide"}') >= 5
    assert 'mac_request_duration_seconds_bucket{le="5e-05",method="Activate"}' in text
    assert "mac_requests_in_flight" in text


async def test_the_metrics_port_is_strict(make_sidecar: SidecarFactory) -> None:
    stub = await make_sidecar(metrics_addr="127.0.0.1:0")
    admin = make_sidecar.admin()
    url = f"http://127.0.0.1:{make_sidecar.last.metrics_port}"
    for path in ("/nope", "/", "/ready", "/metricsx", "/livez/extra"):
        assert get(f"{url}{path}")[0] == 404, path
    await activate(stub, 1, ws="strict")
    call = admin.WatchEvents(admin_pb.WatchEventsRequest(workspace_id="strict"), metadata=AUTH)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(call.read(), 1.5)  # at least one blocking XREAD happens
    call.cancel()
    _, text = get(f"{url}/metrics")
    assert "_created" not in text
    # waiting for events is not a Redis latency
    assert 'mac_redis_round_trip_seconds_count{operation="read_events"}' not in text
    assert 'mac_redis_round_trip_seconds_count{operation="decide"}' in text
    # shadow denials exist only for a method that had one (in this process: tests before this
    # one may have had some), never as a series of zero made up front
    shadow = [line for line in text.splitlines() if line.startswith("mac_shadow_denials_total{")]
    assert all(float(line.rsplit(" ", 1)[1]) > 0 for line in shadow), shadow


async def test_readiness_follows_redis_and_liveness_stays(make_sidecar: SidecarFactory) -> None:
    own = RedisServer()
    own.start()
    try:
        await make_sidecar(redis_url=own.url, metrics_addr="127.0.0.1:0")
        url = f"http://127.0.0.1:{make_sidecar.last.metrics_port}"
        await wait_status(f"{url}/readyz", 200)
        own.stop()
        await wait_status(f"{url}/readyz", 503)
        assert get(f"{url}/livez")[0] == 200
        assert sample(get(f"{url}/metrics")[1], "mac_redis_up") == 0
        own.start()
        await wait_status(f"{url}/readyz", 200)
    finally:
        own.close()


@pytest.mark.usefixtures("engine_env")
async def test_logs_are_json_lines_without_emails_or_phones(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    proc = SidecarProcess(redis_server.url, MAC_LOG_LEVEL="debug", MAC_DEFAULT_LIMIT="1")
    proc.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{proc.port}") as channel:
            stub = pb_grpc.EnforcerStub(channel)
            for contact in (
                pb.Contact(email="Secret.Person@Example.com", phone="+55 11 98765-4321"),
                pb.Contact(email="other.person@example.com"),
            ):
                await stub.Activate(pb.ActivateRequest(workspace_id="logged", contact=contact))
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.Activate(
                    pb.ActivateRequest(workspace_id="logged", contact=pb.Contact(email="bad@"))
                )
            with contextlib.suppress(grpc.aio.AioRpcError):
                await admin_grpc.AdminStub(channel).SetSubscription(
                    admin_pb.SetSubscriptionRequest(workspace_id="logged", plan="nope")
                )
    finally:
        assert proc.stop() == 0
    lines = [json.loads(line) for line in proc.lines if line.startswith("{")]
    text = "".join(proc.lines).lower()
    for secret in ("secret.person", "other.person", "example.com", "98765", "5511"):
        assert secret not in text
    decided = [e for e in lines if e["event"] == "decided"]
    assert decided[0]["level"] == "debug"
    assert decided[0]["workspace"] == "logged"
    assert decided[0]["method"] == "Activate"
    assert decided[0]["reason"] == "ADMITTED"
    assert decided[0]["latency_ms"] > 0
    (denied,) = [e for e in lines if e["event"] == "denied"]
    assert denied["level"] == "info"
    assert denied["reason"] == "LIMIT_REACHED"
    refused, admin_refused = [e for e in lines if e["event"] == "rpc refused"]
    assert refused["code"] == "INVALID_ARGUMENT"
    assert refused["error"] == "contact.email: is not an email address"
    assert (admin_refused["method"], admin_refused["workspace"]) == ("SetSubscription", "logged")
    assert admin_refused["error"].startswith("plan: unknown plan")


async def test_an_event_stream_is_in_flight_while_open_and_counted_when_it_ends(
    admin_stub: admin_grpc.AdminStub,
) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, {"method": "WatchEvents", **labels}) or 0.0

    ok_before = sample("mac_requests_total", code="OK")
    cancelled_before = sample("mac_requests_total", code="CANCELLED")
    timed_out_before = sample("mac_requests_total", code="DEADLINE_EXCEEDED")
    observed_before = sample("mac_request_duration_seconds_count")
    flying_before = sample("mac_requests_in_flight")
    call = admin_stub.WatchEvents(admin_pb.WatchEventsRequest(workspace_id="acme"), metadata=AUTH)
    await wait_for(lambda: sample("mac_requests_in_flight") == flying_before + 1)
    assert sample("mac_requests_total", code="CANCELLED") == cancelled_before  # not at the start
    call.cancel()
    await wait_for(lambda: sample("mac_requests_in_flight") == flying_before)
    # a cancelled stream is told from a finished one, and its duration is observed
    assert sample("mac_requests_total", code="CANCELLED") == cancelled_before + 1
    assert sample("mac_requests_total", code="OK") == ok_before
    assert sample("mac_request_duration_seconds_count") == observed_before + 1

    call = admin_stub.WatchEvents(
        admin_pb.WatchEventsRequest(workspace_id="acme"), metadata=AUTH, timeout=0.3
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for _event in call:
            pass
    assert raised.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_for(lambda: sample("mac_requests_in_flight") == flying_before)
    assert sample("mac_requests_total", code="DEADLINE_EXCEEDED") == timed_out_before + 1
    assert sample("mac_requests_total", code="OK") == ok_before
    assert sample("mac_request_duration_seconds_count") == observed_before + 2


async def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.mark.usefixtures("engine_env")
def test_workers_share_the_port_and_their_metrics_add_up(
    redis_server: RedisServer, redis_db: redis.Redis
) -> None:
    grpc_port, metrics_port = free_port(), free_port()
    env = SidecarProcess(redis_server.url).env
    env.update(
        MAC_GRPC_ADDR=f"127.0.0.1:{grpc_port}",
        MAC_METRICS_ADDR=f"127.0.0.1:{metrics_port}",
        MAC_WORKERS="2",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "sidecar", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{metrics_port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if get(f"{url}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the workers never became ready"
            time.sleep(0.1)
        sent = 0
        for n in range(12):  # a channel per call: new connections, spread over the workers
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
                stub = pb_grpc.EnforcerStub(channel)
                for m in range(5):
                    stub.Activate(
                        pb.ActivateRequest(workspace_id="w", contact=pb.Contact(id=f"{n}-{m}"))
                    )
                    sent += 1
        text = get(f"{url}/metrics")[1]
        assert sample(text, 'mac_requests_total{code="OK",method="Activate"}') == sent
        assert sample(text, 'mac_decisions_total{method="Activate",reason="ADMITTED"}') == sent
        assert sample(text, "mac_redis_up") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert proc.stderr is not None
        log = proc.stderr.read()
        proc.stderr.close()
    assert log.count('"worker started"') == 2
    assert log.count('"shutting down"') == 2

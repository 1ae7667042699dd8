"""Webhooks against real Redis and a real HTTP receiver: signed, retried until a 2xx, in order
per workspace, once between several deliverers, and nothing lost when a sidecar is killed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
import redis
from google.protobuf import json_format
from prometheus_client import REGISTRY

from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.server.app import webhook_deliverer
from sidecar.settings import Settings
from sidecar.usecases.delivery import WebhookDeliverer
from tests.support.calls import activate, read_events
from tests.support.redis_servers import RedisServer, free_port
from tests.support.sidecar_process import SidecarProcess
from tests.support.sidecars import SidecarFactory

WEBHOOK_SECRET = "whsec-test-0123456789abcdef"
# Ten thresholds and a limit of ten: each of the first ten contacts records an event, the
# eleventh a LIMIT_REACHED.
THRESHOLDS = "10,20,30,40,50,60,70,80,90,100"
SINCE = "mac:webhooks:since"
REPLAY_WINDOW_S = 300


def verify(secret: bytes, body: bytes, headers: Mapping[str, str], now: float) -> bool:
    """The receiver's check of docs/webhooks.md, written from the document."""
    expected = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, headers.get("x-mac-signature", "")):
        return False
    timestamp = headers.get("x-mac-timestamp", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > REPLAY_WINDOW_S:
        return False
    signed = timestamp.encode() + b"." + body
    expected = "sha256=" + hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers.get("x-mac-timestamp-signature", ""))


@dataclass(frozen=True)
class Received:
    """One request the receiver answered; ``headers`` with lower-case names."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded

    @property
    def delivery_id(self) -> str:
        return str(self.json["delivery_id"])


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up on a slow answer is expected here."""


class Receiver:
    """A real HTTP server on a free loopback port, recording every request it answers.

    ``failing`` answers 500 to every POST, ``redirecting`` 302 to another path; ``delay``
    holds each answer back that long.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.failing = False
        self.redirecting = False
        self.delay = 0.0
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/mac"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                status = 500 if receiver.failing else 302 if receiver.redirecting else 200
                self._answer(status)

            def do_GET(self) -> None:
                self._answer(200)

            def _answer(self, status: int) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                with receiver._lock:
                    received = Received(self.command, self.path, headers, body, status)
                    receiver._received.append(received)
                time.sleep(receiver.delay)
                self.send_response(status)
                if status == 302:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,))
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def delivered(self) -> list[Received]:
        """The requests answered with a 2xx, in arrival order."""
        return [r for r in self.received if 200 <= r.status < 300]

    async def wait_delivered(self, count: int) -> list[Received]:
        await until(lambda: len(self.delivered()) >= count, f"{count} deliveries")
        return self.delivered()


async def until(condition: Callable[[], bool], what: str, within: float = 15) -> None:
    """Wait for ``condition``, polling; fail after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def failed(reason: str) -> float:
    return sample("mac_webhook_failed_attempts_total", reason=reason)


def oldest_age() -> float:
    return sample("mac_webhook_oldest_undelivered_seconds")


def stream_ids(redis_db: redis.Redis, workspace: str) -> list[str]:
    entries: Any = redis_db.xrange(f"mac:{{{workspace}}}:events")
    return [entry_id.decode() for entry_id, _ in entries]


def pending_count(redis_db: redis.Redis, workspace: str) -> int:
    return int(redis_db.xpending(f"mac:{{{workspace}}}:events", "webhooks")["pending"])


def in_order_once(received: list[Received], workspace: str) -> list[str]:
    """The stream ids of a workspace's deliveries (2xx answers), checked to be there once each;
    and every attempt, failed ones too, checked never to run ahead of an undelivered event."""
    mine = [r for r in received if r.json["workspace_id"] == workspace]
    attempts = [r.json["id"] for r in mine]
    assert attempts == sorted(attempts, key=_id_key), attempts
    ids = [r.json["id"] for r in mine if r.status == 200]
    assert len(ids) == len(set(ids)), f"delivered twice: {ids}"
    return ids


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


async def record(stub: pb_grpc.EnforcerStub, workspace: str, first: int, count: int) -> None:
    """``count`` events in ``workspace``: one per new contact from the ``first``-th."""
    for n in range(first, first + count):
        await activate(stub, n, ws=workspace)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def webhook_settings(settings: Settings, receiver: Receiver) -> Settings:
    return settings.replace(
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        webhook_timeout_ms=500,
        webhook_max_backoff_ms=50,
    )


@pytest.fixture
async def events(make_sidecar: SidecarFactory) -> pb_grpc.EnforcerStub:
    """A sidecar without webhooks whose decisions record events: every contact one."""
    return await make_sidecar(default_limit=10, thresholds=THRESHOLDS)


Deliverers = Callable[..., WebhookDeliverer]


@pytest.fixture
async def deliverers(
    webhook_settings: Settings, redis_db: redis.Redis
) -> AsyncIterator[Deliverers]:
    """Starts deliverers (looking every 0.1 s), each once the first has recorded when
    webhooks were turned on; stops them at the end."""
    started: list[WebhookDeliverer] = []

    def start(sessions: int = 16, **changes: Any) -> WebhookDeliverer:
        settings = webhook_settings.replace(**changes)
        deliverer = webhook_deliverer(settings, poll_s=0.1, sessions=sessions)
        deliverer.start()
        started.append(deliverer)
        return deliverer

    yield start
    for deliverer in started:
        await deliverer.stop(0)


async def turned_on(redis_db: redis.Redis) -> None:
    await until(lambda: bool(redis_db.exists(SINCE)), "webhooks to be turned on")


async def test_every_event_is_posted_signed_with_the_watch_events_fields(
    make_sidecar: SidecarFactory,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    stub = await make_sidecar(default_limit=10, thresholds=THRESHOLDS)
    admin = make_sidecar.admin()
    delivered_before = sample("mac_webhook_deliveries_total")
    deliverers()
    await turned_on(redis_db)
    await record(stub, "acme", 0, 11)

    received = await receiver.wait_delivered(11)
    assert len(received) == 11
    watched = await read_events(admin, 11)
    for request, event in zip(received, watched, strict=True):
        assert verify(WEBHOOK_SECRET.encode(), request.body, request.headers, time.time())
        assert not verify(b"another-secret-entirely", request.body, request.headers, time.time())
        assert request.headers["content-type"] == "application/json"
        assert request.path == "/hooks/mac"
        fields = json_format.MessageToDict(
            event, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
        body = request.json
        assert body.keys() == {"delivery_id", *fields}
        assert body["delivery_id"] == f"acme:{event.id}" == request.headers["x-mac-delivery"]
        for name in ("active", "limit", "threshold_percent"):
            assert type(body[name]) is int
            assert body[name] == int(fields[name])
        assert {k: body[k] for k in ("id", "workspace_id", "type", "period", "at")} == {
            k: fields[k] for k in ("id", "workspace_id", "type", "period", "at")
        }
    assert [r.json["type"] for r in received][-2:] == [
        "TYPE_THRESHOLD_CROSSED",
        "TYPE_LIMIT_REACHED",
    ]
    assert received[0].json["at"] == "2026-11-15T12:00:00Z"  # the decision's clock
    assert in_order_once(received, "acme") == stream_ids(redis_db, "acme")
    assert sample("mac_webhook_deliveries_total") == delivered_before + 11
    await until(lambda: pending_count(redis_db, "acme") == 0, "every event acknowledged")
    await until(lambda: oldest_age() == 0, "nothing left undelivered")
    await asyncio.sleep(0.3)  # a few more looks: nothing is sent again
    assert len(receiver.received) == 11


async def test_a_failing_receiver_is_retried_until_it_answers_in_order_per_workspace(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.failing = True
    failed_before = failed("status")
    deliverers()
    await turned_on(redis_db)
    await asyncio.gather(record(events, "east", 0, 4), record(events, "west", 0, 4))

    def tried_twice() -> bool:
        tried = Counter(r.json["workspace_id"] for r in receiver.received)
        return tried["east"] >= 2 and tried["west"] >= 2

    await until(tried_twice, "two failed attempts in each workspace")
    await until(lambda: failed("status") >= failed_before + 4, "failed attempts counted")
    await until(lambda: oldest_age() > 0, "the oldest undelivered event to age")
    receiver.failing = False

    received = await receiver.wait_delivered(8)
    for workspace in ("east", "west"):
        assert in_order_once(receiver.received, workspace) == stream_ids(redis_db, workspace)
        first = f"{workspace}:{stream_ids(redis_db, workspace)[0]}"
        retried = [r for r in receiver.received if r.delivery_id == first]
        assert len(retried) >= 2
        assert len({r.body for r in retried}) == 1  # the same bytes every time
        assert len({r.headers["x-mac-signature"] for r in retried}) == 1
    assert len(received) == 8
    await until(lambda: oldest_age() == 0, "the oldest age back to 0")


async def test_a_receiver_down_then_up_gets_everything(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.stop()
    refused_before = failed("connection")
    deliverers()
    await turned_on(redis_db)
    await record(events, "acme", 0, 3)
    await until(lambda: failed("connection") >= refused_before + 3, "refused connections")

    receiver.start()
    received = await receiver.wait_delivered(3)
    assert in_order_once(received, "acme") == stream_ids(redis_db, "acme")


async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.redirecting = True
    failed_before = failed("status")
    deliverers()
    await turned_on(redis_db)
    await record(events, "acme", 0, 1)
    await until(lambda: failed("status") >= failed_before + 2, "redirects counted as failures")
    receiver.redirecting = False

    await receiver.wait_delivered(1)
    assert {(r.method, r.path) for r in receiver.received} == {("POST", "/hooks/mac")}
    assert [r.status for r in receiver.received][:2] == [302, 302]


async def test_a_slow_receiver_times_out_and_gets_the_event_again(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.delay = 1.0  # twice MAC_WEBHOOK_TIMEOUT_MS
    timeouts_before = failed("timeout")
    deliverers()
    await turned_on(redis_db)
    await record(events, "acme", 0, 1)
    await until(lambda: failed("timeout") >= timeouts_before + 1, "a timeout")
    receiver.delay = 0.0

    await until(lambda: pending_count(redis_db, "acme") == 0, "the event acknowledged")
    (event_id,) = stream_ids(redis_db, "acme")
    requests = receiver.received
    assert len(requests) >= 2
    assert {r.delivery_id for r in requests} == {f"acme:{event_id}"}


async def test_events_from_before_webhooks_were_turned_on_are_not_sent(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    await record(events, "acme", 0, 3)
    deliverers()
    await turned_on(redis_db)
    await asyncio.sleep(0.3)  # it has looked at acme: its group exists, and nothing went
    assert receiver.received == []
    await record(events, "acme", 3, 2)

    received = await receiver.wait_delivered(2)
    assert in_order_once(received, "acme") == stream_ids(redis_db, "acme")[3:]
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 2


async def test_two_deliverers_deliver_each_event_once_between_them(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.delay = 0.05
    workspaces = [f"ws-{n}" for n in range(6)]
    leases = [f"mac:{{{ws}}}:webhook:lease" for ws in workspaces]
    holders: set[bytes | str] = set()

    async def watch_leases() -> None:
        while True:
            holders.update(h for h in redis_db.mget(leases) if h)
            await asyncio.sleep(0.01)

    watching = asyncio.create_task(watch_leases())
    # three workspaces at a time each: both have work to do
    deliverers(sessions=3)
    deliverers(sessions=3)
    await turned_on(redis_db)
    await asyncio.gather(*(record(events, ws, 0, 5) for ws in workspaces))
    received = await receiver.wait_delivered(30)
    watching.cancel()

    for workspace in workspaces:
        assert in_order_once(received, workspace) == stream_ids(redis_db, workspace)
    assert len(holders) == 2
    await asyncio.sleep(0.3)
    assert len(receiver.received) == 30


async def test_a_stopped_deliverer_finishes_its_request_and_leaves_the_rest_pending(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.delay = 0.3
    first = deliverers(webhook_timeout_ms=2000)
    await turned_on(redis_db)
    await record(events, "acme", 0, 3)
    await until(lambda: len(receiver.received) == 1, "a request in flight")
    await first.stop(grace=2.0)

    ids = stream_ids(redis_db, "acme")
    assert [r.json["id"] for r in receiver.received] == ids[:1]
    assert pending_count(redis_db, "acme") == 2  # read, not delivered: still pending
    assert not redis_db.exists("mac:{acme}:webhook:lease")  # released, not left to expire

    receiver.delay = 0.0
    deliverers()
    received = await receiver.wait_delivered(3)
    assert in_order_once(received, "acme") == ids


async def test_a_deliverer_that_lost_its_lease_sends_nothing_more(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.failing = True
    deliverers(webhook_timeout_ms=3000)  # a 6 s lease, renewed every 2 s in the background
    await turned_on(redis_db)
    await record(events, "acme", 0, 1)
    await until(lambda: len(receiver.received) >= 2, "retries")
    lease = "mac:{acme}:webhook:lease"
    redis_db.set(lease, "a-consumer-that-took-over", px=10_000)
    await asyncio.sleep(0.2)  # a request in flight may still arrive
    sent = len(receiver.received)
    await asyncio.sleep(0.5)
    assert len(receiver.received) == sent
    assert pending_count(redis_db, "acme") == 1

    redis_db.delete(lease)  # as if the other consumer died: the event is taken up again
    receiver.failing = False
    received = await receiver.wait_delivered(1)
    assert in_order_once(received, "acme") == stream_ids(redis_db, "acme")


async def test_events_trimmed_before_delivery_are_counted_as_skipped(
    events: pb_grpc.EnforcerStub,
    receiver: Receiver,
    deliverers: Deliverers,
    redis_db: redis.Redis,
) -> None:
    receiver.failing = True
    skipped_before = sample("mac_webhook_skipped_total")
    first = deliverers()
    await turned_on(redis_db)
    await record(events, "acme", 0, 3)
    await until(lambda: len(receiver.received) >= 1, "a first attempt")
    await first.stop(0)
    await record(events, "acme", 3, 2)  # never read
    # what decide.lua's MAXLEN ~ MAC_EVENTS_MAX does to a stream nobody keeps up with
    redis_db.xtrim("mac:{acme}:events", maxlen=0)
    await record(events, "acme", 5, 1)

    receiver.failing = False
    deliverers()
    received = await receiver.wait_delivered(1)
    assert [r.json["id"] for r in received] == stream_ids(redis_db, "acme")
    await until(lambda: sample("mac_webhook_skipped_total") == skipped_before + 5, "5 skipped")
    await until(lambda: oldest_age() == 0, "nothing left undelivered")


async def test_a_killed_sidecar_loses_no_delivery(
    redis_server: RedisServer,
    redis_db: redis.Redis,
    receiver: Receiver,
    make_sidecar: SidecarFactory,
) -> None:
    webhook_env = {
        "MAC_WEBHOOK_URL": receiver.url,
        "MAC_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "MAC_WEBHOOK_TIMEOUT_MS": "500",
        "MAC_WEBHOOK_MAX_BACKOFF_MS": "50",
    }
    receiver.failing = True
    doomed = SidecarProcess(
        redis_server.url, MAC_DEFAULT_LIMIT="10", MAC_THRESHOLDS=THRESHOLDS, **webhook_env
    )
    doomed.start()
    try:
        await turned_on(redis_db)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{doomed.port}") as channel:
            await record(pb_grpc.EnforcerStub(channel), "acme", 0, 4)
        await until(lambda: len(receiver.received) >= 2, "attempts from the doomed sidecar")
        await until(lambda: pending_count(redis_db, "acme") > 0, "events pending")
        assert redis_db.exists("mac:{acme}:webhook:lease")
        assert doomed.proc is not None
        doomed.proc.send_signal(signal.SIGKILL)
        doomed.proc.wait(10)
    finally:
        doomed.stop()

    receiver.failing = False
    await make_sidecar(
        webhook_url=receiver.url,
        webhook_secret=WEBHOOK_SECRET,
        webhook_timeout_ms=500,
        webhook_max_backoff_ms=50,
    )
    received = await receiver.wait_delivered(4)
    assert in_order_once(receiver.received, "acme") == stream_ids(redis_db, "acme")
    assert len(received) == 4
    await until(lambda: pending_count(redis_db, "acme") == 0, "every event acknowledged")

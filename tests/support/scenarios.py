"""Scenarios every topology must pass, written once: the tests name the topology and its sidecars.

Each scenario calls real sidecars through real channels and inspects Redis through a direct
connection to the master that holds the workspace (``inspect(workspace)``).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc
from sidecar.storage.keys import WorkspaceKeys
from tests.support.calls import CALL_DEADLINE, TASKS, activate_concurrently
from tests.support.constants import AUTH

Inspect = Callable[[str], redis.Redis]
ACKNOWLEDGED = (pb.REASON_ADMITTED, pb.REASON_ALREADY_ACTIVE)


def _bytes(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def members(client: redis.Redis, workspace: str) -> set[bytes]:
    """Every identity key counted in any period of ``workspace``."""
    found: set[bytes] = set()
    for key in client.scan_iter(match=f"mac:{{{workspace}}}:members:*", count=1000):
        found |= {_bytes(member) for member in client.smembers(key)}
    return found


def counts(client: redis.Redis, workspace: str) -> dict[str, int]:
    """The active count of each period of ``workspace`` (``mac:{ws}:counts`` without the
    ``<period_key>:<field>`` fields beside the counts)."""
    raw = client.hgetall(WorkspaceKeys(workspace).counts)
    fields = {_bytes(k).decode(): v for k, v in raw.items()}
    return {k: int(v) for k, v in fields.items() if ":" not in k}


def set_sizes(client: redis.Redis, workspace: str) -> dict[str, int]:
    """The size of each period's member set of ``workspace``, by period key."""
    prefix = f"mac:{{{workspace}}}:members:"
    return {
        key.decode().removeprefix(prefix): int(client.scard(key))
        for key in client.scan_iter(match=f"{prefix}*", count=1000)
    }


def emails(prefix: str, count: int) -> list[pb.Contact]:
    return [pb.Contact(email=f"{prefix}{n}@example.com") for n in range(count)]


async def batch_concurrently(
    stubs: Sequence[pb_grpc.EnforcerStub], workspace: str, batches: list[list[pb.Contact]]
) -> list[pb.Decision]:
    """Send every batch at once, round robin over ``stubs``; all decisions in one list."""
    replies = await asyncio.gather(
        *(
            stubs[n % len(stubs)].ActivateBatch(
                pb.ActivateBatchRequest(workspace_id=workspace, contacts=batch),
                timeout=CALL_DEADLINE,
            )
            for n, batch in enumerate(batches)
        )
    )
    return [decision for reply in replies for decision in reply.decisions]


def assert_exactly_admitted(
    decisions: list[pb.Decision], limit: int, client: redis.Redis, workspace: str
) -> None:
    """``limit`` admitted, the rest denied at the limit, and Redis holding exactly those."""
    reasons = Counter(d.reason for d in decisions)
    assert reasons[pb.REASON_ADMITTED] == limit, reasons
    assert reasons[pb.REASON_LIMIT_REACHED] == len(decisions) - limit, reasons
    admitted = {bytes.fromhex(d.contact_key) for d in decisions if d.reason == pb.REASON_ADMITTED}
    assert len(admitted) == limit
    assert members(client, workspace) == admitted
    assert list(counts(client, workspace).values()) == [limit]


async def exact_limit_with_activate(
    stubs: Sequence[pb_grpc.EnforcerStub], workspaces: list[str], limit: int, inspect: Inspect
) -> None:
    """4 x ``limit`` distinct contacts per workspace, all workspaces at once."""
    decided = await asyncio.gather(
        *(activate_concurrently(stubs, ws, emails(f"{ws}-", limit * 4)) for ws in workspaces)
    )
    for ws, decisions in zip(workspaces, decided, strict=True):
        assert len(decisions) == limit * 4
        with inspect(ws) as client:
            assert_exactly_admitted(decisions, limit, client, ws)


async def exact_limit_with_batches(
    stubs: Sequence[pb_grpc.EnforcerStub], workspaces: list[str], limit: int, inspect: Inspect
) -> None:
    """Per workspace: batches of 10 and single Activates at once, 4 x ``limit`` contacts."""

    async def one(ws: str) -> list[pb.Decision]:
        contacts = emails(f"{ws}-", limit * 4)
        half = len(contacts) // 2
        batches = [contacts[i : i + 10] for i in range(0, half, 10)]
        batched, single = await asyncio.gather(
            batch_concurrently(stubs, ws, batches),
            activate_concurrently(stubs, ws, contacts[half:]),
        )
        return batched + single

    decided = await asyncio.gather(*(one(ws) for ws in workspaces))
    for ws, decisions in zip(workspaces, decided, strict=True):
        assert len(decisions) == limit * 4
        with inspect(ws) as client:
            assert_exactly_admitted(decisions, limit, client, ws)


async def admin_subscribe(admin: admin_grpc.AdminStub, workspace: str, limit: int = 100) -> None:
    """An enterprise subscription of ``limit`` (a subscription key of the workspace's own)."""
    await admin.SetSubscription(
        admin_pb.SetSubscriptionRequest(
            workspace_id=workspace, plan="enterprise", custom_limit=limit
        ),
        metadata=AUTH,
    )


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as reply:  # noqa: S310 - loopback http
            return int(reply.status)
    except urllib.error.HTTPError as exc:
        return exc.code


async def health(channel: grpc.aio.Channel, service: str = "") -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    status: int = reply.status
    return status


async def wait_health(channel: grpc.aio.Channel, wanted: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while (status := await health(channel)) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"health stayed {status}, never {wanted}")
        await asyncio.sleep(0.05)


async def wait_http(url: str, wanted: int, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while (status := await asyncio.to_thread(http_status, url)) != wanted:
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} stayed {status}, never {wanted}")
        await asyncio.sleep(0.05)


async def admin_calls_and_health(
    stub: pb_grpc.EnforcerStub,
    admin: admin_grpc.AdminStub,
    channel: grpc.aio.Channel,
    metrics_url: str,
    workspaces: list[str],
    inspect: Inspect,
) -> None:
    """Subscriptions, usage, listings and events of every workspace; health and ``/readyz``."""
    await wait_health(channel, health_pb2.HealthCheckResponse.SERVING)
    await wait_http(f"{metrics_url}/readyz", 200)
    for n, ws in enumerate(workspaces):
        await admin.SetSubscription(
            admin_pb.SetSubscriptionRequest(
                workspace_id=ws, plan="enterprise", custom_limit=10, thresholds=[50]
            ),
            metadata=AUTH,
        )
        count = 6 + n
        decisions = await activate_concurrently([stub], ws, emails(f"{ws}-", count))
        keys = {d.contact_key for d in decisions if d.reason == pb.REASON_ADMITTED}
        assert len(keys) == min(count, 10)

        usage = await admin.GetUsage(admin_pb.GetUsageRequest(workspace_id=ws), metadata=AUTH)
        assert (usage.usage.active, usage.usage.limit) == (len(keys), 10)

        listed: set[str] = set()
        token = ""
        for _ in range(100):
            page = await admin.ListActiveContacts(
                admin_pb.ListActiveContactsRequest(workspace_id=ws, page_token=token, page_size=2),
                metadata=AUTH,
            )
            listed |= set(page.contact_keys)
            assert page.total == len(keys)
            token = page.next_page_token
            if not token:
                break
        assert listed == keys

        subscription = await admin.GetSubscription(
            admin_pb.GetSubscriptionRequest(workspace_id=ws), metadata=AUTH
        )
        assert subscription.custom_limit == 10

        call = admin.WatchEvents(admin_pb.WatchEventsRequest(workspace_id=ws), metadata=AUTH)
        try:
            event = await asyncio.wait_for(call.read(), 10)
        finally:
            call.cancel()
        assert isinstance(event, admin_pb.Event)
        assert event.type == admin_pb.Event.TYPE_THRESHOLD_CROSSED
        assert event.workspace_id == ws

        with inspect(ws) as client:
            assert {k.hex() for k in members(client, ws)} == keys
    assert await health(channel) == health_pb2.HealthCheckResponse.SERVING
    assert await health(channel, "liveness") == health_pb2.HealthCheckResponse.SERVING


@dataclass
class Call:
    """One call of the load: when, what it acknowledged, or the status it failed with."""

    started: float
    ended: float
    acknowledged: list[bytes] = field(default_factory=list)
    code: grpc.StatusCode | None = None


@dataclass
class FailoverReport:
    """What callers saw while a master died under load."""

    calls: list[Call]
    killed_at: float
    promoted_in: float
    acknowledged: set[bytes]
    errors: Counter[str]

    @property
    def resumed_in(self) -> float:
        """Seconds from the kill until the first success of a call started after the last error.

        Every call started after that one succeeded too.
        """
        failures = [c for c in self.calls if c.code is not None]
        after = max((c.started for c in failures), default=self.killed_at)
        later = [c.ended for c in self.calls if c.code is None and c.started > after]
        assert later, "no call succeeded after the last error"
        return min(later) - self.killed_at

    def successes_after(self, instant: float) -> int:
        return sum(1 for c in self.calls if c.code is None and c.started > instant)


async def failover_under_load(
    stubs: Sequence[pb_grpc.EnforcerStub],
    workspace: str,
    kill: Callable[[], float],
    *,
    warmup_successes: int = 200,
    tail_successes: int = 200,
    deadline: float = 60.0,
) -> FailoverReport:
    """Activate new contacts (and again some admitted ones, and batches) from TASKS tasks while
    ``kill()`` (run in a thread) kills the master and waits for a new one.

    The load runs until ``tail_successes`` calls started after the last error succeeded.
    """
    calls: list[Call] = []
    numbers = itertools.count()
    admitted: list[str] = []
    stop = asyncio.Event()
    rng = random.Random(7)

    async def worker(n: int) -> None:
        stub = stubs[n % len(stubs)]
        while not stop.is_set():
            i = next(numbers)
            started = time.monotonic()
            try:
                if i % 8 == 7:
                    batch = [pb.Contact(email=f"b{i}.{k}@example.com") for k in range(4)]
                    reply = await stub.ActivateBatch(
                        pb.ActivateBatchRequest(workspace_id=workspace, contacts=batch),
                        timeout=CALL_DEADLINE,
                    )
                    decisions = list(reply.decisions)
                else:
                    again = i % 4 == 3 and admitted
                    email = rng.choice(admitted) if again else f"c{i}@example.com"
                    decision = await stub.Activate(
                        pb.ActivateRequest(workspace_id=workspace, contact=pb.Contact(email=email)),
                        timeout=CALL_DEADLINE,
                    )
                    decisions = [decision]
                    if decision.reason == pb.REASON_ADMITTED:
                        admitted.append(email)
            except grpc.aio.AioRpcError as exc:
                calls.append(Call(started, time.monotonic(), code=exc.code()))
                await asyncio.sleep(0.02)  # a caller backs off a little
                continue
            acked = [bytes.fromhex(d.contact_key) for d in decisions if d.reason in ACKNOWLEDGED]
            calls.append(Call(started, time.monotonic(), acknowledged=acked))

    workers = [asyncio.create_task(worker(n)) for n in range(TASKS)]
    try:
        began = time.monotonic()
        while sum(1 for c in calls if c.code is None) < warmup_successes:
            assert time.monotonic() - began < deadline, "the load never got going"
            await asyncio.sleep(0.05)
        killed_at = time.monotonic()
        promoted_in = await asyncio.to_thread(kill)
        while True:
            last_error = max((c.started for c in calls if c.code is not None), default=killed_at)
            if sum(1 for c in calls if c.code is None and c.started > last_error) >= tail_successes:
                break
            assert time.monotonic() - killed_at < deadline, "decisions never resumed"
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.gather(*workers, return_exceptions=True)
    return FailoverReport(
        calls=calls,
        killed_at=killed_at,
        promoted_in=promoted_in,
        acknowledged={key for c in calls for key in c.acknowledged},
        errors=Counter(c.code.name for c in calls if c.code is not None),
    )


def assert_nothing_lost(report: FailoverReport, client: redis.Redis, workspace: str) -> None:
    """Only UNAVAILABLE, every acknowledged contact counted, counts agreeing with the sets."""
    print(
        f"failover: promoted in {report.promoted_in:.2f} s, decisions resumed in "
        f"{report.resumed_in:.2f} s; {len(report.calls)} calls, errors {dict(report.errors)}, "
        f"{len(report.acknowledged)} contacts acknowledged"
    )
    assert set(report.errors) <= {"UNAVAILABLE"}, report.errors
    assert report.resumed_in < 30
    counted = members(client, workspace)
    lost = report.acknowledged - counted
    assert not lost, f"{len(lost)} of {len(report.acknowledged)} acknowledged contacts lost"
    assert counts(client, workspace) == set_sizes(client, workspace)

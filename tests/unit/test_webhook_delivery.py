"""Webhook delivery through its ports alone: in-memory streams, a receiver that fails on
request, and what delivery reports (Redis and HTTP are tested in
integration/test_webhooks.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from sidecar.domain.decision import Event
from sidecar.domain.delivery import Attempt, Lease, NewEntries, StreamEntry, WorkspacePoll
from sidecar.domain.errors import StorageError
from sidecar.usecases.delivery import WebhookDeliverer

SECRET = b"whsec-test-0123456789abcdef"


def event(n: int) -> Event:
    return Event(f"{n}-0", "acme", "THRESHOLD_CROSSED", "2026-11", n, n, 100, n)


@dataclass
class MemoryStreams:
    """One workspace's group: entries not yet read, and those acknowledged."""

    new: list[StreamEntry]
    skipped: int = 0
    acked: list[str] = field(default_factory=list)
    leased: bool = False

    async def start_id(self) -> str:
        return "0-0"

    async def workspaces(self) -> list[str]:
        return ["acme"]

    async def poll(
        self, workspaces: Sequence[str], *, start_id: str, lease_ms: int, take: bool
    ) -> list[WorkspacePoll]:
        if not self.new:
            return [WorkspacePoll("acme", 0, Lease.NONE)]
        if take:
            self.leased = True
        lease = Lease.MINE if self.leased else Lease.FREE
        return [WorkspacePoll("acme", 1, lease)]

    async def renew(self, workspace_id: str, lease_ms: int) -> bool:
        return self.leased

    async def release(self, workspace_id: str) -> None:
        self.leased = False

    async def claim(self, workspace_id: str) -> int:
        return 0

    async def pending(self, workspace_id: str, count: int) -> list[StreamEntry]:
        return []

    async def read_new(self, workspace_id: str, count: int) -> NewEntries:
        entries, self.new = self.new[:count], self.new[count:]
        skipped, self.skipped = self.skipped, 0
        return NewEntries(entries, skipped)

    async def ack(self, workspace_id: str, entry_id: str) -> None:
        self.acked.append(entry_id)

    async def close(self) -> None:
        pass


@dataclass
class FailingFirst:
    """Fails the first ``failures`` requests with a 500, then delivers."""

    failures: int
    bodies: list[bytes] = field(default_factory=list)

    async def post(self, body: bytes, headers: dict[str, str]) -> Attempt:
        self.bodies.append(body)
        if self.failures:
            self.failures -= 1
            return Attempt(False, "status", "HTTP 500")
        return Attempt(True)

    def close(self) -> None:
        pass


@dataclass
class Reports:
    """What delivery reported, in order."""

    seen: list[tuple[str, object]] = field(default_factory=list)

    def delivered(self, event: Event, failed_attempts: int) -> None:
        self.seen.append(("delivered", (event.id, failed_attempts)))

    def attempt_failed(self, event: Event, attempt: Attempt, failed_attempts: int) -> None:
        self.seen.append(("attempt_failed", (event.id, attempt.reason, failed_attempts)))

    def skipped(self, workspace_id: str, count: int) -> None:
        self.seen.append(("skipped", count))

    def oldest_undelivered(self, age_s: float) -> None:
        pass

    def storage_lost(self, error: StorageError) -> None:
        self.seen.append(("storage_lost", str(error)))

    def storage_back(self) -> None:
        self.seen.append(("storage_back", None))

    def interrupted(self, workspace_id: str, error: StorageError) -> None:
        self.seen.append(("interrupted", str(error)))

    def lease_lost(self, workspace_id: str) -> None:
        self.seen.append(("lease_lost", workspace_id))

    def failed(self, workspace_id: str, error: BaseException) -> None:
        self.seen.append(("failed", repr(error)))


async def test_events_are_delivered_in_order_retried_and_reported() -> None:
    streams = MemoryStreams(
        [StreamEntry("1-0", event(1)), StreamEntry("2-0", None), StreamEntry("3-0", event(3))],
        skipped=2,
    )
    receiver = FailingFirst(failures=1)
    reports = Reports()
    deliverer = WebhookDeliverer(
        streams,
        receiver,
        reports,
        SECRET,
        timeout_ms=500,
        max_backoff_ms=10,
        poll_s=0.01,
        uniform=lambda low, high: 0.0,
    )
    deliverer.start()
    for _ in range(200):
        if len(streams.acked) == 3:
            break
        await asyncio.sleep(0.01)
    await deliverer.stop(0)

    assert streams.acked == ["1-0", "2-0", "3-0"]
    assert len(receiver.bodies) == 3  # the first event twice, the trimmed one never
    assert receiver.bodies[0] == receiver.bodies[1]
    assert reports.seen == [
        ("skipped", 2),
        ("attempt_failed", ("1-0", "status", 1)),
        ("delivered", ("1-0", 1)),
        ("skipped", 1),
        ("delivered", ("3-0", 0)),
    ]
    assert not streams.leased  # given back

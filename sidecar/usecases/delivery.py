"""Webhook delivery: every event POSTed, signed, to the receiver and retried until a 2xx, in
order per workspace, by one consumer of the ``webhooks`` group at a time (docs/webhooks.md).

Each process runs one ``WebhookDeliverer``: a consumer of its own in every workspace's group.
It looks at every workspace about once a second; a workspace with something to deliver and a
free lease is leased to it, and a session delivers its events one by one in stream order,
acknowledging each after a 2xx, until none is left. Only the lease holder reads a workspace,
which keeps its order; a holder that dies stops renewing, and the next one takes over its
pending entries first.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.domain.clock import Clock, SystemClock, to_ms
from sidecar.domain.delivery import Lease, StreamEntry
from sidecar.domain.errors import StorageError
from sidecar.domain.ports import DeliveryObserver, WebhookReceiver, WebhookStore
from sidecar.usecases import webhooks as message

# A lease lasts twice MAC_WEBHOOK_TIMEOUT_MS, this long at least, and is renewed every third
# of it, requests in flight or not: a holder that died or lost storage is replaced within one.
LEASE_MIN_MS = 2000
# Seconds between looks at every workspace, at least; longer with more workspaces than
# POLLS_PER_SECOND, looked at POLL_CHUNK to a round trip.
POLL_SECONDS = 1.0
POLLS_PER_SECOND = 1000
POLL_CHUNK = 200
# Workspaces one process delivers at once, and so requests in flight.
SESSIONS = 16
# Entries read at a time.
BATCH = 100


@dataclass(slots=True)
class _Session:
    """One workspace being delivered; ``halt`` asks it to stop after its request in flight."""

    task: asyncio.Task[None] | None = None
    halt: asyncio.Event = field(default_factory=asyncio.Event)


class WebhookDeliverer:
    """Delivers every workspace's events to the receiver, as one consumer of the group.

    :param streams: this consumer's storage (a client of its own).
    :param receiver: where events go.
    :param observer: what is reported as delivery goes (metrics and logs).
    :param secret: the key the signatures are made with.
    :param timeout_ms: ``MAC_WEBHOOK_TIMEOUT_MS``; the lease is twice as long, 2 s at least.
    :param max_backoff_ms: ``MAC_WEBHOOK_MAX_BACKOFF_MS``, the longest wait between attempts.
    :param clock: the wall clock, for the timestamp header and the oldest event's age (stream
        ids are Redis's wall clock; never a test's frozen decision clock).
    :param uniform: the jitter's random source.
    :param poll_s: seconds between looks at every workspace, at least.
    :param sessions: workspaces delivered at once.
    """

    def __init__(
        self,
        streams: WebhookStore,
        receiver: WebhookReceiver,
        observer: DeliveryObserver,
        secret: bytes,
        *,
        timeout_ms: int,
        max_backoff_ms: int,
        clock: Clock | None = None,
        uniform: Callable[[float, float], float] = random.uniform,
        poll_s: float = POLL_SECONDS,
        sessions: int = SESSIONS,
    ) -> None:
        self.streams = streams
        self._receiver = receiver
        self._observer = observer
        self._secret = secret
        self.lease_ms = max(LEASE_MIN_MS, 2 * timeout_ms)
        self._max_backoff_s = max_backoff_ms / 1000
        self._clock = clock or SystemClock()
        self._uniform = uniform
        self._poll_s = poll_s
        self._capacity = sessions
        self._sessions: dict[str, _Session] = {}
        self._oldest_ms = 0
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._storage_ok = True

    def start(self) -> None:
        """Start looking for events to deliver, in the background."""
        self._task = asyncio.create_task(self._run())

    async def stop(self, grace: float) -> None:
        """Stop: no new request starts; those in flight get ``grace`` seconds to finish (and
        be acknowledged), then are abandoned; leases are released. An event not acknowledged
        stays pending in the group, for the next consumer."""
        self._stopping.set()
        if self._task is not None:
            # it ends after its current look (a lease it takes then is given back at once)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, max(grace, self.lease_ms / 1000))
        for session in self._sessions.values():
            session.halt.set()
        tasks = [s.task for s in self._sessions.values() if s.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self._receiver.close()
        await self.streams.close()

    async def _run(self) -> None:
        start_id = ""
        loop = asyncio.get_running_loop()
        while not self._stopping.is_set():
            began = loop.time()
            workspaces: list[str] = []
            try:
                start_id = start_id or await self.streams.start_id()
                workspaces = await self.streams.workspaces()
                await self._poll(workspaces, start_id)
                if not self._storage_ok:
                    self._observer.storage_back()
                self._storage_ok = True
            except StorageError as exc:
                if self._storage_ok:
                    self._observer.storage_lost(exc)
                self._storage_ok = False
            except Exception as exc:  # the loop must outlive anything; the next look tries again
                self._observer.failed("", exc)
            self._publish_age()
            period = max(self._poll_s, len(workspaces) / POLLS_PER_SECOND)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), period - (loop.time() - began))

    async def _poll(self, workspaces: list[str], start_id: str) -> None:
        """Look at every workspace; lease those with work and a free lease, as many as there
        are free sessions, and start delivering them."""
        oldest = 0
        for first in range(0, len(workspaces), POLL_CHUNK):
            if self._stopping.is_set():
                return
            found = await self.streams.poll(
                workspaces[first : first + POLL_CHUNK],
                start_id=start_id,
                lease_ms=self.lease_ms,
                take=False,
            )
            free: list[str] = []
            for seen in found:
                if seen.oldest_ms and (not oldest or seen.oldest_ms < oldest):
                    oldest = seen.oldest_ms
                if seen.workspace_id in self._sessions:
                    continue
                if seen.lease is Lease.MINE:  # left by a session that could not give it back
                    free.insert(0, seen.workspace_id)
                elif seen.lease is Lease.FREE:
                    free.append(seen.workspace_id)
            room = self._capacity - len(self._sessions)
            if free and room > 0:
                taken = await self.streams.poll(
                    free[:room], start_id=start_id, lease_ms=self.lease_ms, take=True
                )
                for seen in taken:
                    if seen.lease is Lease.MINE and not self._stopping.is_set():
                        self._begin(seen.workspace_id)
                    elif seen.lease is Lease.MINE:
                        await self.streams.release(seen.workspace_id)
        self._oldest_ms = oldest

    def _publish_age(self) -> None:
        age_ms = to_ms(self._clock.now()) - self._oldest_ms if self._oldest_ms else 0
        self._observer.oldest_undelivered(max(age_ms, 0) / 1000)

    def _begin(self, workspace_id: str) -> None:
        session = _Session()
        self._sessions[workspace_id] = session
        session.task = asyncio.create_task(self._deliver_workspace(workspace_id, session.halt))

    async def _deliver_workspace(self, workspace_id: str, halt: asyncio.Event) -> None:
        """Deliver the workspace's pending entries, then its new ones, until none is left."""
        renewing = asyncio.create_task(self._keep_lease(workspace_id, halt))
        try:
            self._count_skipped(workspace_id, await self.streams.claim(workspace_id))
            while not halt.is_set():
                entries = await self.streams.pending(workspace_id, BATCH)
                if not entries:
                    new = await self.streams.read_new(workspace_id, BATCH)
                    self._count_skipped(workspace_id, new.skipped)
                    entries = new.entries
                if not entries:
                    return
                for entry in entries:
                    if not await self._deliver(workspace_id, entry, halt):
                        return
        except StorageError as exc:
            self._observer.interrupted(workspace_id, exc)
        except Exception as exc:  # what is not acknowledged stays pending for the next session
            self._observer.failed(workspace_id, exc)
        finally:
            renewing.cancel()
            with contextlib.suppress(StorageError):
                await self.streams.release(workspace_id)
            del self._sessions[workspace_id]

    async def _deliver(self, workspace_id: str, entry: StreamEntry, halt: asyncio.Event) -> bool:
        """Send one entry until a 2xx, then acknowledge it; False when asked to stop first."""
        event = entry.event
        if event is None:
            self._count_skipped(workspace_id, 1)
            await self.streams.ack(workspace_id, entry.id)
            return True
        body = message.payload(event)
        failures = 0
        # the lease is checked (and renewed) before every attempt: a consumer whose lease
        # expired while it stalled sends nothing more once another one has taken over
        while not halt.is_set() and await self._renew(workspace_id, halt):
            timestamp = int(self._clock.now().timestamp())
            attempt = await self._receiver.post(
                body, message.headers(self._secret, body, event, timestamp)
            )
            if attempt.delivered:
                await self.streams.ack(workspace_id, entry.id)
                self._observer.delivered(event, failures)
                return True
            failures += 1
            self._observer.attempt_failed(event, attempt, failures)
            delay = message.backoff(failures, self._max_backoff_s, self._uniform)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(halt.wait(), delay)
        return False

    async def _keep_lease(self, workspace_id: str, halt: asyncio.Event) -> None:
        """Renew the lease every third of its length; halt the session once it is lost (taken
        by another consumer, or not renewed for a whole lease while Redis failed)."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                if not await self._renew(workspace_id, halt):
                    return
                renewed = time.monotonic()
            except StorageError:
                if time.monotonic() - renewed >= self.lease_ms / 1000:
                    halt.set()
                    return

    async def _renew(self, workspace_id: str, halt: asyncio.Event) -> bool:
        """Extend the workspace's lease; when it is no longer this consumer's, halt the
        session and answer False."""
        if await self.streams.renew(workspace_id, self.lease_ms):
            return True
        self._observer.lease_lost(workspace_id)
        halt.set()
        return False

    def _count_skipped(self, workspace_id: str, skipped: int) -> None:
        if skipped:
            self._observer.skipped(workspace_id, skipped)

"""Webhooks: every event POSTed, signed, to ``MAC_WEBHOOK_URL`` and retried until a 2xx, in
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
import http.client
import os
import random
import secrets
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sidecar import metrics
from sidecar.domain.clock import Clock, SystemClock, to_ms
from sidecar.domain.errors import StorageError
from sidecar.logs import get_logger
from sidecar.settings import Settings
from sidecar.storage.connections import redis_client
from sidecar.storage.webhooks import LEASE_FREE, LEASE_MINE, StreamEntry, WebhookStreams
from sidecar.usecases import webhooks as message

log = get_logger("sidecar.server.webhooks")

# A lease lasts twice MAC_WEBHOOK_TIMEOUT_MS, this long at least, and is renewed every third
# of it, requests in flight or not: a holder that died or lost Redis is replaced within one.
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


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one request went.

    :param reason: why it did not deliver, a label of ``mac_webhook_failed_attempts_total``.
    :param detail: what happened, for the log (``HTTP 500``, ``connection refused``).
    """

    delivered: bool
    reason: str = ""
    detail: str = ""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        """A redirect is an answer other than a 2xx: an event is never sent elsewhere."""
        return


class HttpReceiver:
    """POSTs to one URL with the standard library, from threads of its own.

    :param timeout_s: the longest one request may take, from sending to the answer's status.
    :param threads: requests in flight at most.
    """

    def __init__(self, url: str, timeout_s: float, threads: int = SESSIONS) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="mac-webhook")

    async def post(self, body: bytes, headers: dict[str, str]) -> Attempt:
        """POST ``body``; a 2xx delivers, anything else is a failed attempt."""
        loop = asyncio.get_running_loop()
        sent = loop.run_in_executor(self._executor, self._post, body, headers)
        try:
            # The socket's timeout bounds each read; this bounds the whole request. A request
            # given up on finishes in its thread, within its socket timeouts.
            return await asyncio.wait_for(sent, self._timeout_s)
        except TimeoutError:
            return Attempt(False, "timeout", "timed out")

    def _post(self, body: bytes, headers: dict[str, str]) -> Attempt:
        # the scheme is http or https: Settings refuses any other
        request = urllib.request.Request(self._url, body, headers, method="POST")  # noqa: S310
        try:
            with self._opener.open(request, timeout=self._timeout_s) as answer:
                status = int(answer.status)
        except urllib.error.HTTPError as exc:
            exc.close()
            return Attempt(False, "status", f"HTTP {exc.code}")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return Attempt(False, "timeout", "timed out")
            return Attempt(False, "connection", str(exc.reason))
        except TimeoutError:
            return Attempt(False, "timeout", "timed out")
        except (OSError, http.client.HTTPException) as exc:
            return Attempt(False, "connection", f"{type(exc).__name__}: {exc}")
        if 200 <= status < 300:
            return Attempt(True)
        return Attempt(False, "status", f"HTTP {status}")

    def close(self) -> None:
        """Stop taking requests; one in flight finishes in its thread."""
        self._executor.shutdown(wait=False, cancel_futures=True)


@dataclass(slots=True)
class _Session:
    """One workspace being delivered; ``halt`` asks it to stop after its request in flight."""

    task: asyncio.Task[None] | None = None
    halt: asyncio.Event = field(default_factory=asyncio.Event)


def consumer_name() -> str:
    """A name for this process's consumer, unique even when a restarted container has the
    same host name and pid."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class WebhookDeliverer:
    """Delivers every workspace's events to the receiver, as one consumer of the group.

    :param streams: this consumer's Redis commands (a client of its own).
    :param receiver: where events go.
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
        streams: WebhookStreams,
        receiver: HttpReceiver,
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
        self._redis_ok = True

    @classmethod
    def from_settings(
        cls, settings: Settings, *, poll_s: float = POLL_SECONDS, sessions: int = SESSIONS
    ) -> WebhookDeliverer:
        """A deliverer to ``MAC_WEBHOOK_URL``, on a Redis pool of its own."""
        return cls(
            WebhookStreams(redis_client(settings), consumer_name()),
            HttpReceiver(settings.webhook_url, settings.webhook_timeout_ms / 1000, sessions),
            settings.webhook_secret.encode(),
            timeout_ms=settings.webhook_timeout_ms,
            max_backoff_ms=settings.webhook_max_backoff_ms,
            poll_s=poll_s,
            sessions=sessions,
        )

    def start(self) -> None:
        """Start looking for events to deliver, in the background."""
        for reason in metrics.WEBHOOK_FAILURE_REASONS:
            metrics.WEBHOOK_FAILED_ATTEMPTS.labels(reason)
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
                if not self._redis_ok:
                    log.info("webhooks: redis reachable again")
                self._redis_ok = True
            except StorageError as exc:
                if self._redis_ok:
                    log.warning("webhooks: cannot look for events to deliver", error=str(exc))
                self._redis_ok = False
            except Exception:  # the loop must outlive anything; the next look tries again
                log.exception("webhooks: looking for events to deliver failed")
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
                if seen.lease == LEASE_MINE:  # left by a session that could not give it back
                    free.insert(0, seen.workspace_id)
                elif seen.lease == LEASE_FREE:
                    free.append(seen.workspace_id)
            room = self._capacity - len(self._sessions)
            if free and room > 0:
                taken = await self.streams.poll(
                    free[:room], start_id=start_id, lease_ms=self.lease_ms, take=True
                )
                for seen in taken:
                    if seen.lease == LEASE_MINE and not self._stopping.is_set():
                        self._begin(seen.workspace_id)
                    elif seen.lease == LEASE_MINE:
                        await self.streams.release(seen.workspace_id)
        self._oldest_ms = oldest

    def _publish_age(self) -> None:
        age_ms = to_ms(self._clock.now()) - self._oldest_ms if self._oldest_ms else 0
        metrics.WEBHOOK_OLDEST_UNDELIVERED.set(max(age_ms, 0) / 1000)

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
            log.warning("webhooks: delivery interrupted", workspace=workspace_id, error=str(exc))
        except Exception:  # what is not acknowledged stays pending for the next session
            log.exception("webhooks: delivery failed", workspace=workspace_id)
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
                metrics.WEBHOOK_DELIVERIES.inc()
                if failures:
                    log.info(
                        "webhook delivered",
                        delivery_id=message.delivery_id(event),
                        failed_attempts=failures,
                    )
                return True
            failures += 1
            metrics.WEBHOOK_FAILED_ATTEMPTS.labels(attempt.reason).inc()
            if failures == 1 or failures % 10 == 0:
                log.warning(
                    "webhook attempt failed; retrying",
                    delivery_id=message.delivery_id(event),
                    reason=attempt.reason,
                    detail=attempt.detail,
                    failed_attempts=failures,
                )
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
        log.warning("webhooks: lease lost", workspace=workspace_id)
        halt.set()
        return False

    def _count_skipped(self, workspace_id: str, skipped: int) -> None:
        if skipped:
            metrics.WEBHOOK_SKIPPED.inc(skipped)
            log.warning(
                "webhooks: events trimmed from the stream before they were delivered "
                "(raise MAC_EVENTS_MAX)",
                workspace=workspace_id,
                skipped=skipped,
            )

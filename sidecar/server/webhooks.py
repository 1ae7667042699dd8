"""Webhooks over HTTP: the receiver the events are POSTed to, this process's consumer name,
and delivery reported in metrics and logs. Delivery itself is ``usecases.delivery``."""

from __future__ import annotations

import asyncio
import http.client
import os
import secrets
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sidecar import metrics
from sidecar.domain.decision import Event
from sidecar.domain.delivery import Attempt
from sidecar.domain.errors import StorageError
from sidecar.logs import get_logger
from sidecar.usecases import webhooks as message
from sidecar.usecases.delivery import SESSIONS

log = get_logger("sidecar.server.webhooks")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        """A redirect is an answer other than a 2xx: an event is never sent elsewhere."""
        return


class HttpReceiver:
    """POSTs to one URL with the standard library, from threads of its own (a
    ``WebhookReceiver``).

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


def consumer_name() -> str:
    """A name for this process's consumer, unique even when a restarted container has the
    same host name and pid."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class DeliveryTelemetry:
    """Webhook delivery in metrics (``mac_webhook_*``) and logs (a ``DeliveryObserver``): a
    failed attempt is logged on the first failure and every tenth after it."""

    def __init__(self) -> None:
        for reason in metrics.WEBHOOK_FAILURE_REASONS:  # every series exported from the start
            metrics.WEBHOOK_FAILED_ATTEMPTS.labels(reason)

    def delivered(self, event: Event, failed_attempts: int) -> None:
        metrics.WEBHOOK_DELIVERIES.inc()
        if failed_attempts:
            log.info(
                "webhook delivered",
                delivery_id=message.delivery_id(event),
                failed_attempts=failed_attempts,
            )

    def attempt_failed(self, event: Event, attempt: Attempt, failed_attempts: int) -> None:
        metrics.WEBHOOK_FAILED_ATTEMPTS.labels(attempt.reason).inc()
        if failed_attempts == 1 or failed_attempts % 10 == 0:
            log.warning(
                "webhook attempt failed; retrying",
                delivery_id=message.delivery_id(event),
                reason=attempt.reason,
                detail=attempt.detail,
                failed_attempts=failed_attempts,
            )

    def skipped(self, workspace_id: str, count: int) -> None:
        metrics.WEBHOOK_SKIPPED.inc(count)
        log.warning(
            "webhooks: events trimmed from the stream before they were delivered "
            "(raise MAC_EVENTS_MAX)",
            workspace=workspace_id,
            skipped=count,
        )

    def oldest_undelivered(self, age_s: float) -> None:
        metrics.WEBHOOK_OLDEST_UNDELIVERED.set(age_s)

    def storage_lost(self, error: StorageError) -> None:
        log.warning("webhooks: cannot look for events to deliver", error=str(error))

    def storage_back(self) -> None:
        log.info("webhooks: redis reachable again")

    def interrupted(self, workspace_id: str, error: StorageError) -> None:
        log.warning("webhooks: delivery interrupted", workspace=workspace_id, error=str(error))

    def lease_lost(self, workspace_id: str) -> None:
        log.warning("webhooks: lease lost", workspace=workspace_id)

    def failed(self, workspace_id: str, error: BaseException) -> None:
        if workspace_id:
            log.error("webhooks: delivery failed", workspace=workspace_id, exc_info=error)
        else:
            log.error("webhooks: looking for events to deliver failed", exc_info=error)

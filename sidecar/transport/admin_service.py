"""``mac.v1.Admin``: the operators' service, each call made by a named admin."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc

from sidecar import metrics
from sidecar.domain.errors import ResourceExhausted
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.logs import get_logger
from sidecar.transport import wire
from sidecar.transport.admin_auth import ADMIN, AdminAccess
from sidecar.transport.runner import Gate, UnaryRunner
from sidecar.transport.status import Context, abort_with, loggable, status_for
from sidecar.usecases.admin import Admin
from sidecar.usecases.audit import AuditTrail
from sidecar.usecases.events import EventWatch
from sidecar.usecases.forgetting import Forgetting
from sidecar.usecases.identities import Identities
from sidecar.usecases.statements import Statements

T = TypeVar("T")
M = TypeVar("M")

__all__ = ["ADMIN", "AdminService", "count_refusal"]

log = get_logger("sidecar.transport.admin")

# The statuses of an Admin call refused for what its caller sent (mac_admin_refusals_total).
CALLER_CAUSED = frozenset(
    {
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
    }
)


def count_refusal(exc: Exception) -> None:
    """Count an Admin call that failed with ``exc`` in ``mac_admin_refusals_total`` when its
    caller caused it (a bad token, bad input), by its status; nothing else of it is kept."""
    code, _ = status_for(exc)
    if code in CALLER_CAUSED:
        metrics.ADMIN_REFUSALS.labels(code.name.lower()).inc()


class AdminService(UnaryRunner):
    """``mac.v1.Admin``. Every call is let in as a named admin (``AdminAccess``)."""

    def __init__(
        self,
        admin: Admin,
        identities: Identities,
        events: EventWatch,
        access: AdminAccess,
        *,
        statements: Statements,
        audit: AuditTrail,
        forgetting: Forgetting,
        max_streams: int = 256,
        gate: Gate | None = None,
    ) -> None:
        super().__init__(gate)
        self._audit = audit
        self._forgetting = forgetting
        self._statements = statements
        self._admin = admin
        self._identities = identities
        self._events = events
        self._access = access
        self._max_streams = max_streams
        self._streams = 0

    def refused(self, exc: Exception) -> None:
        """A request refused before it reached its method (undecodable bytes, too many
        contacts): counted as the caller's."""
        count_refusal(exc)

    def _authorize(self, context: Context) -> str:
        """Let the call in (``AdminAccess.authorize``).

        :return: the name of the admin the call is made by (audited with what it changes).
        """
        return self._access.authorize(context)

    def _let_in(self, context: Context, method: str, workspace: str) -> str:
        """``_authorize``, and a log line naming the admin and what it calls."""
        admin = self._authorize(context)
        log.info("admin call", method=method, admin=admin, workspace=loggable(workspace))
        return admin

    async def _admin_call(
        self,
        method: str,
        context: Context,
        workspace: str,
        call: Callable[[str], Awaitable[T]],
        to_message: Callable[[T], M],
    ) -> M:
        """``call`` is given the name of the admin making it."""

        async def authorized() -> T:
            try:
                return await call(self._let_in(context, method, workspace))
            except Exception as exc:
                count_refusal(exc)
                raise

        return await self.unary(method, context, authorized, to_message, workspace)

    async def SetSubscription(
        self, request: admin_pb.SetSubscriptionRequest, context: Context
    ) -> admin_pb.Subscription:
        return await self._admin_call(
            "SetSubscription",
            context,
            request.workspace_id,
            lambda admin: self._admin.set_subscription(
                wire.subscription_change(request), admin=admin
            ),
            wire.subscription_message,
        )

    async def GetSubscription(
        self, request: admin_pb.GetSubscriptionRequest, context: Context
    ) -> admin_pb.Subscription:
        return await self._admin_call(
            "GetSubscription",
            context,
            request.workspace_id,
            lambda _admin: self._admin.get_subscription(request.workspace_id),
            wire.subscription_message,
        )

    async def GetUsage(
        self, request: admin_pb.GetUsageRequest, context: Context
    ) -> admin_pb.GetUsageResponse:
        return await self._admin_call(
            "GetUsage",
            context,
            request.workspace_id,
            lambda _admin: self._admin.usage(request.workspace_id, request.period),
            wire.usage_response,
        )

    async def ListActiveContacts(
        self, request: admin_pb.ListActiveContactsRequest, context: Context
    ) -> admin_pb.ListActiveContactsResponse:
        return await self._admin_call(
            "ListActiveContacts",
            context,
            request.workspace_id,
            lambda _admin: self._admin.list_contacts(
                request.workspace_id, request.period, request.page_token, request.page_size
            ),
            wire.contact_page,
        )

    async def ListStatements(
        self, request: admin_pb.ListStatementsRequest, context: Context
    ) -> admin_pb.ListStatementsResponse:
        return await self._admin_call(
            "ListStatements",
            context,
            "",
            lambda _admin: self._statements.list(
                request.period, request.page_size, request.page_token
            ),
            wire.statements_response,
        )

    async def Merge(
        self, request: admin_pb.MergeRequest, context: Context
    ) -> admin_pb.MergeResponse:
        sources = [wire.contact_fields(c) for c in request.sources]
        target = wire.contact_fields(request.target)
        return await self._admin_call(
            "Merge",
            context,
            request.workspace_id,
            lambda admin: self._identities.merge(
                request.workspace_id, sources, target, admin=admin
            ),
            wire.merge_response,
        )

    async def SetExempt(
        self, request: admin_pb.SetExemptRequest, context: Context
    ) -> admin_pb.SetExemptResponse:
        contacts = [wire.contact_fields(c) for c in request.contacts]
        return await self._admin_call(
            "SetExempt",
            context,
            request.workspace_id,
            lambda admin: self._identities.set_exempt(
                request.workspace_id, contacts, request.exempt, admin=admin
            ),
            lambda keys: admin_pb.SetExemptResponse(contact_keys=keys),
        )

    async def Forget(
        self, request: admin_pb.ForgetRequest, context: Context
    ) -> admin_pb.ForgetResponse:
        contact = wire.contact_fields(request.contact)
        return await self._admin_call(
            "Forget",
            context,
            request.workspace_id,
            lambda admin: self._forgetting.forget(request.workspace_id, contact, admin=admin),
            lambda done: admin_pb.ForgetResponse(
                forgotten=done.forgotten,
                identifiers_removed=done.identifiers_removed,
                periods=done.periods,
            ),
        )

    async def ListAuditRecords(
        self, request: admin_pb.ListAuditRecordsRequest, context: Context
    ) -> admin_pb.ListAuditRecordsResponse:
        return await self._admin_call(
            "ListAuditRecords",
            context,
            request.workspace_id,
            lambda _admin: self._audit.list(
                request.workspace_id,
                wire.audit_since(request),
                request.page_size,
                request.page_token,
            ),
            wire.audit_records_response,
        )

    async def WatchEvents(
        self, request: admin_pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[admin_pb.Event]:
        """A stream counts once, when it ends, and its duration is observed then: ``CANCELLED``
        when the caller cancelled it, ``DEADLINE_EXCEEDED`` when its deadline passed, ``OK``
        when the process ended it (shutdown), else by the status it failed with. It is in
        flight meanwhile. Every stream of the process shares one Redis reader (``EventWatch``);
        ``max_streams`` bounds memory and fan-out work, not connections."""
        measured = self.method("WatchEvents")
        measured.in_flight.inc()
        self._streams += 1
        started = time.perf_counter()
        ended = "OK"
        entered = False
        try:
            self.gate.enter(stream=True)
            entered = True
            if self._streams > self._max_streams:
                raise ResourceExhausted(
                    f"{self._max_streams} event streams are open (MAC_MAX_STREAMS); retry later"
                )
            self._let_in(context, "WatchEvents", request.workspace_id)
            # closed here, not whenever it is collected: it leaves the process's event hub
            watch = self._events.watch(request.workspace_id, request.after_id)
            async with contextlib.aclosing(watch) as events:
                async for event in events:
                    yield wire.event_message(event)
        except asyncio.CancelledError:
            remaining = context.time_remaining()
            ended = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
            raise
        except Exception as exc:
            ended = ""  # counted by abort_with, with the status it fails with
            count_refusal(exc)
            await abort_with(context, "WatchEvents", exc, request.workspace_id)
        finally:
            if entered:
                self.gate.leave(stream=True)
            self._streams -= 1
            measured.in_flight.dec()
            measured.seconds.observe(time.perf_counter() - started)
            if ended == "OK":
                measured.ok.inc()
            elif ended:
                metrics.REQUESTS.labels("WatchEvents", ended).inc()

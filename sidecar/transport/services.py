"""The gRPC servicers of ``mac.v1.Enforcer`` and ``mac.v1.Admin``, and the one mapping from
errors to status codes."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from sidecar import metrics
from sidecar.domain.decision import BatchResult, Decision
from sidecar.domain.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    StorageError,
    Unauthenticated,
)
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.logs import get_logger
from sidecar.transport import wire
from sidecar.usecases.admin import Admin
from sidecar.usecases.enforcer import Enforcer

log = get_logger("sidecar.transport.services")
T = TypeVar("T")
M = TypeVar("M")
Context = grpc.aio.ServicerContext[Any, Any]


def status_for(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """The gRPC status of an error; the only place errors become status codes.

    Anything a caller sent maps to a code naming the problem; a Redis that cannot be reached
    is UNAVAILABLE, which clients may retry; INTERNAL is left for our own faults, whose
    details stay in the log rather than going to the caller.
    """
    if isinstance(exc, InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, FailedPrecondition):
        return grpc.StatusCode.FAILED_PRECONDITION, str(exc)
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, str(exc)
    if isinstance(exc, Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED, str(exc)
    if isinstance(exc, StorageError) and exc.transient:
        return grpc.StatusCode.UNAVAILABLE, "the counting backend (Redis) is unavailable"
    return grpc.StatusCode.INTERNAL, "internal error; the sidecar's log has the details"


async def abort_with(context: Context, method: str, exc: Exception, workspace: str = "") -> None:
    """Log ``exc`` as it deserves and end the call with its status.

    Our faults log at error with the traceback, an unreachable Redis at warning, a caller's
    mistake at info. The message of an error never holds an email or phone number: input
    errors name the field, not the value.
    """
    code, details = status_for(exc)
    if code is grpc.StatusCode.INTERNAL:
        log.error("rpc failed", method=method, workspace=workspace, exc_info=exc)
    elif code is grpc.StatusCode.UNAVAILABLE:
        log.warning("rpc failed", method=method, workspace=workspace, error=str(exc))
    else:
        log.info("rpc refused", method=method, workspace=workspace, code=code.name, error=details)
    metrics.REQUESTS.labels(method, code.name).inc()
    await context.abort(code, details)


class _MethodMetrics:
    """The labelled metrics of one method, resolved once."""

    def __init__(self, method: str) -> None:
        self.ok = metrics.REQUESTS.labels(method, "OK")
        self.seconds = metrics.REQUEST_SECONDS.labels(method)
        self.in_flight = metrics.IN_FLIGHT.labels(method)
        self.shadowed = metrics.SHADOW_DENIALS.labels(method)
        self.name = method
        self._reasons: dict[int, Any] = {}

    def decided(self, decision: Decision) -> None:
        counter = self._reasons.get(decision.reason)
        if counter is None:
            counter = self._reasons[decision.reason] = metrics.DECISIONS.labels(
                self.name, decision.reason.name
            )
        counter.inc()
        if decision.shadow_denied:
            self.shadowed.inc()


class _Instrumented:
    """Runs one unary RPC: times it, counts it by status, turns errors into a status, and
    hands the result to ``_after`` (logs, decision metrics) before converting it."""

    def __init__(self) -> None:
        self._metrics: dict[str, _MethodMetrics] = {}

    def _method(self, method: str) -> _MethodMetrics:
        found = self._metrics.get(method)
        if found is None:
            found = self._metrics[method] = _MethodMetrics(method)
        return found

    def _after(self, method: _MethodMetrics, workspace: str, result: Any, seconds: float) -> None:
        """Called with every successful result; nothing by default."""

    async def _unary(
        self,
        method: str,
        context: Context,
        call: Callable[[], Awaitable[T]],
        to_message: Callable[[T], M],
        workspace: str = "",
    ) -> M:
        measured = self._method(method)
        measured.in_flight.inc()
        started = time.perf_counter()
        try:
            result = await call()
            message = to_message(result)
        except Exception as exc:
            measured.seconds.observe(time.perf_counter() - started)
            await abort_with(context, method, exc, workspace)
            raise  # abort raises; this keeps type checkers informed
        finally:
            measured.in_flight.dec()
        seconds = time.perf_counter() - started
        measured.ok.inc()
        measured.seconds.observe(seconds)
        self._after(measured, workspace, result, seconds)
        return message


class EnforcerService(_Instrumented):
    """``mac.v1.Enforcer``: the hot path.

    :param workspace_gauges: where per-workspace usage is exported (opt-in, bounded).
    :param log_requests: log every decision at debug level (not only denials).
    """

    def __init__(
        self,
        enforcer: Enforcer,
        workspace_gauges: metrics.WorkspaceGauges,
        log_requests: bool = False,
    ) -> None:
        super().__init__()
        self._enforcer = enforcer
        self._gauges = workspace_gauges
        self._log_requests = log_requests

    def _after(self, method: _MethodMetrics, workspace: str, result: Any, seconds: float) -> None:
        decisions: list[Decision] = (
            result.decisions if isinstance(result, BatchResult) else [result]
        )
        usage = result.usage
        if isinstance(result, BatchResult):
            metrics.BATCH_SIZE.observe(len(decisions))
        denied = 0
        for decision in decisions:
            method.decided(decision)
            denied += not decision.allowed
        if usage is not None:
            self._gauges.observe(workspace, usage.active, usage.limit)
        if not denied and not self._log_requests:
            return
        latency_ms = round(seconds * 1000, 3)
        first = decisions[0]
        if denied:
            log.info(
                "denied",
                method=method.name,
                workspace=workspace,
                reason=first.reason.name if len(decisions) == 1 else "LIMIT_REACHED",
                denied=denied,
                contacts=len(decisions),
                latency_ms=latency_ms,
            )
        else:
            log.debug(
                "decided",
                method=method.name,
                workspace=workspace,
                reason=first.reason.name,
                contacts=len(decisions),
                latency_ms=latency_ms,
            )

    async def Check(self, request: pb.CheckRequest, context: Context) -> pb.Decision:
        fields = wire.contact_fields(request.contact)
        return await self._unary(
            "Check",
            context,
            lambda: self._enforcer.check(request.workspace_id, fields),
            wire.decision_message,
            request.workspace_id,
        )

    async def Activate(self, request: pb.ActivateRequest, context: Context) -> pb.Decision:
        fields = wire.contact_fields(request.contact)
        return await self._unary(
            "Activate",
            context,
            lambda: self._enforcer.activate(request.workspace_id, fields),
            wire.decision_message,
            request.workspace_id,
        )

    async def ActivateBatch(
        self, request: pb.ActivateBatchRequest, context: Context
    ) -> pb.ActivateBatchResponse:
        contacts = [wire.contact_fields(c) for c in request.contacts]
        return await self._unary(
            "ActivateBatch",
            context,
            lambda: self._enforcer.activate_batch(request.workspace_id, contacts),
            wire.batch_message,
            request.workspace_id,
        )


class AdminService(_Instrumented):
    """``mac.v1.Admin``: operators. Every call needs the bearer token when one is set."""

    def __init__(self, admin: Admin, token: str) -> None:
        super().__init__()
        self._admin = admin
        self._token = token.encode()

    def _authorize(self, context: Context) -> None:
        if not self._token:
            return
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, given = value.partition(" ")
                # compare_digest: the time taken must not tell how much of a guess was right
                if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), self._token):
                    return
                break
        raise Unauthenticated("a valid admin token is required (authorization: Bearer <token>)")

    async def _admin_call(
        self,
        method: str,
        context: Context,
        call: Callable[[], Awaitable[T]],
        to_message: Callable[[T], M],
    ) -> M:
        async def authorized() -> T:
            self._authorize(context)
            return await call()

        return await self._unary(method, context, authorized, to_message)

    async def SetSubscription(
        self, request: admin_pb.SetSubscriptionRequest, context: Context
    ) -> admin_pb.Subscription:
        return await self._admin_call(
            "SetSubscription",
            context,
            lambda: self._admin.set_subscription(wire.subscription_of(request)),
            wire.subscription_message,
        )

    async def GetSubscription(
        self, request: admin_pb.GetSubscriptionRequest, context: Context
    ) -> admin_pb.Subscription:
        return await self._admin_call(
            "GetSubscription",
            context,
            lambda: self._admin.get_subscription(request.workspace_id),
            wire.subscription_message,
        )

    async def GetUsage(
        self, request: admin_pb.GetUsageRequest, context: Context
    ) -> admin_pb.GetUsageResponse:
        return await self._admin_call(
            "GetUsage",
            context,
            lambda: self._admin.usage(request.workspace_id, request.period),
            lambda found: wire.usage_response(*found),
        )

    async def ListActiveContacts(
        self, request: admin_pb.ListActiveContactsRequest, context: Context
    ) -> admin_pb.ListActiveContactsResponse:
        return await self._admin_call(
            "ListActiveContacts",
            context,
            lambda: self._admin.list_contacts(
                request.workspace_id, request.period, request.page_token, request.page_size
            ),
            wire.contact_page,
        )

    async def Merge(
        self, request: admin_pb.MergeRequest, context: Context
    ) -> admin_pb.MergeResponse:
        sources = [wire.contact_fields(c) for c in request.sources]
        target = wire.contact_fields(request.target)
        return await self._admin_call(
            "Merge",
            context,
            lambda: self._admin.merge(request.workspace_id, sources, target),
            wire.merge_response,
        )

    async def SetExempt(
        self, request: admin_pb.SetExemptRequest, context: Context
    ) -> admin_pb.SetExemptResponse:
        contacts = [wire.contact_fields(c) for c in request.contacts]
        return await self._admin_call(
            "SetExempt",
            context,
            lambda: self._admin.set_exempt(request.workspace_id, contacts, request.exempt),
            lambda keys: admin_pb.SetExemptResponse(contact_keys=keys),
        )

    async def WatchEvents(
        self, request: admin_pb.WatchEventsRequest, context: Context
    ) -> AsyncIterator[admin_pb.Event]:
        try:
            self._authorize(context)
            metrics.REQUESTS.labels("WatchEvents", "OK").inc()
            async for event in self._admin.watch(request.workspace_id, request.after_id):
                yield wire.event_message(event)
        except Exception as exc:
            await abort_with(context, "WatchEvents", exc)

"""``mac.v1.Enforcer``: the hot path, its decision metrics and its request logs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, NamedTuple

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from sidecar import metrics
from sidecar.domain.clock import Clock, SystemClock
from sidecar.domain.contact import ContactFields
from sidecar.domain.decision import BatchResult, Decision, forecast_active
from sidecar.domain.errors import InvalidArgument
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.transport import wire
from sidecar.transport.runner import Gate, MethodMetrics
from sidecar.transport.status import Context, log
from sidecar.transport.streams import OrderedStream
from sidecar.usecases.enforcer import Enforcer
from sidecar.usecases.warm import WarmPath


class EnforcerService(OrderedStream):
    """``mac.v1.Enforcer``.

    :param enforcer: decides what the warm path leaves.
    :param warm: answers the contacts it knows at once, before anything is awaited.
    :param workspace_gauges: where per-workspace usage is exported (opt-in, bounded).
    :param log_requests: log every decision at debug level (not only denials).
    :param clock: the time the per-workspace forecast is computed at.
    """

    def __init__(
        self,
        enforcer: Enforcer,
        warm: WarmPath,
        workspace_gauges: metrics.WorkspaceGauges,
        log_requests: bool = False,
        gate: Gate | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(gate)
        self._enforcer = enforcer
        self._warm = warm
        self._stream_calls = ActivateStreamCalls(enforcer, warm)
        self._gauges = workspace_gauges
        self._clock = clock or SystemClock()
        self._log_requests = log_requests

    def after(self, method: MethodMetrics, workspace: str, result: Any, seconds: float) -> None:
        decisions: list[Decision] = (
            result.decisions if isinstance(result, BatchResult) else [result]
        )
        usage = result.usage
        if isinstance(result, BatchResult) and method.name == "ActivateBatch":
            metrics.BATCH_SIZE.observe(len(decisions))
        denied = method.decided_all(decisions)
        if usage is not None and self._gauges.capacity > 0:
            forecast = forecast_active(usage.active, usage.period, self._clock.now())
            self._gauges.observe(workspace, usage.active, usage.limit, forecast, usage.channels)
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
        return await self._single("Check", request, context, self._enforcer.check)

    async def Activate(self, request: pb.ActivateRequest, context: Context) -> pb.Decision:
        return await self._single("Activate", request, context, self._enforcer.activate)

    async def _single(
        self,
        method: str,
        request: pb.CheckRequest | pb.ActivateRequest,
        context: Context,
        decide: Callable[..., Awaitable[Decision]],
    ) -> pb.Decision:
        """One contact: answered by the warm path at once, or decided by ``decide``."""
        workspace = request.workspace_id
        fields = wire.contact_fields(request.contact)
        if request.HasField("occurred_at"):
            return await self.unary(
                method,
                context,
                lambda: self._at_event_time(workspace, fields, request.occurred_at, decide),
                wire.decision_message,
                workspace,
            )
        warm = self.at_once(method, workspace, self._warm.answer, fields, wire.decision_message)
        if warm is not None:
            return warm
        return await self.unary(
            method,
            context,
            lambda: decide(workspace, fields),
            wire.decision_message,
            workspace,
        )

    async def _at_event_time(
        self,
        workspace: str,
        fields: ContactFields,
        occurred_at: Timestamp,
        decide: Callable[..., Awaitable[Decision]],
    ) -> Decision:
        """One contact at its event time: the warm path answers it when the time falls in the
        period it knows (its errors leave the contact to ``decide``), else ``decide``."""
        at = wire.occurred_at(occurred_at)
        try:
            warm = self._warm.answer(workspace, fields, at)
        except Exception as exc:  # counted and logged; decided as any call
            self.warm_errors.failed(exc)
            warm = None
        return warm if warm is not None else await decide(workspace, fields, at)

    async def ActivateBatch(
        self, request: pb.ActivateBatchRequest, context: Context
    ) -> pb.ActivateBatchResponse:
        contacts = [wire.contact_fields(c) for c in request.contacts]
        return await self.unary(
            "ActivateBatch",
            context,
            lambda: self._enforcer.activate_batch(
                request.workspace_id, contacts, wire.event_time(request)
            ),
            wire.batch_message,
            request.workspace_id,
        )

    async def CheckBatch(
        self, request: pb.CheckBatchRequest, context: Context
    ) -> pb.CheckBatchResponse:
        contacts = [wire.contact_fields(c) for c in request.contacts]
        return await self.unary(
            "CheckBatch",
            context,
            lambda: self._enforcer.check_batch(
                request.workspace_id, contacts, wire.event_time(request)
            ),
            wire.check_batch_message,
            request.workspace_id,
        )

    async def ActivateStream(
        self, requests: AsyncIterator[pb.ActivateStreamRequest | InvalidArgument], context: Context
    ) -> None:
        # Every message counts under method="ActivateStream", Check messages included.
        await self.ordered("ActivateStream", context, requests, self._stream_calls)


class StreamCall(NamedTuple):
    """One message of ``ActivateStream``, converted from the wire once.

    :param decide: ``Enforcer.activate`` or ``Enforcer.check``; ``None`` when the message
        names neither.
    :param occurred_at: the wrapped request's, as sent (``None``: absent); read when the
        call is answered, so that a bad one answers its message ``INVALID_ARGUMENT``.
    """

    tag: int
    workspace_id: str
    contact: ContactFields
    decide: Callable[[str, ContactFields, datetime | None], Awaitable[Decision]] | None
    occurred_at: Timestamp | None = None


_NO_CONTACT = ContactFields()


class ActivateStreamCalls:
    """The ``StreamCalls`` of ``ActivateStream``: Activate and Check messages, each answered by
    the warm path at once when it can, else decided by the enforcer."""

    __slots__ = ("_activate", "_check", "_warm")

    def __init__(self, enforcer: Enforcer, warm: WarmPath) -> None:
        self._activate = enforcer.activate
        self._check = enforcer.check
        self._warm = warm

    def read(self, request: pb.ActivateStreamRequest) -> StreamCall:
        kind = request.WhichOneof("call")
        call: pb.ActivateRequest | pb.CheckRequest
        if kind == "activate":
            call, decide = request.activate, self._activate
        elif kind == "check":
            call, decide = request.check, self._check
        else:
            return StreamCall(request.tag, "", _NO_CONTACT, None)
        return StreamCall(
            request.tag,
            call.workspace_id,
            wire.contact_fields(call.contact),
            decide,
            call.occurred_at if call.HasField("occurred_at") else None,
        )

    def workspace(self, call: StreamCall) -> str:
        return call.workspace_id

    def answer_now(self, call: StreamCall) -> Decision | None:
        if call.decide is None:
            return None
        if call.occurred_at is None:
            return self._warm.answer(call.workspace_id, call.contact)
        try:
            at = wire.occurred_at(call.occurred_at)
        except InvalidArgument:
            return None  # refused when decided
        return self._warm.answer(call.workspace_id, call.contact, at)

    def decide(self, call: StreamCall) -> Awaitable[Decision]:
        if call.decide is None:
            raise InvalidArgument("call", "is not set: give activate or check")
        at = wire.occurred_at(call.occurred_at) if call.occurred_at is not None else None
        return call.decide(call.workspace_id, call.contact, at)

    def answered(self, call: StreamCall, decision: Decision) -> pb.ActivateStreamResponse:
        response = pb.ActivateStreamResponse(tag=call.tag)
        wire.fill_decision(response.decision, decision)
        return response

    def error(
        self, call: StreamCall | None, code: grpc.StatusCode, details: str
    ) -> pb.ActivateStreamResponse:
        error = pb.StreamError(code=code.value[0], message=details)
        return pb.ActivateStreamResponse(error=error, tag=call.tag if call is not None else 0)

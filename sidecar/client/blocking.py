"""``Client``: the sidecar's API, blocking, with deadlines, retries, TLS, the admin token and
a policy for an unreachable sidecar; its calls are built in ``calls.py``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar

import grpc

from sidecar.client import calls
from sidecar.client.calls import Call, ContactLike
from sidecar.client.options import ClientOptions
from sidecar.client.results import (
    BatchResult,
    Decision,
    StreamError,
    StreamRequest,
    stream_request,
    stream_result,
)
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc

T = TypeVar("T")


class Client:
    """A blocking client of one sidecar.

    ``Client("127.0.0.1:50051").activate("acme", email="ana@example.com")`` answers a
    ``Decision`` with ``.allowed``, ``.reason`` and ``.usage``. Errors other than those the
    ``on_unavailable`` policy answers raise ``grpc.RpcError`` with the sidecar's status
    (``INVALID_ARGUMENT`` naming the field, ``UNAUTHENTICATED``, ...).

    :param address: ``host:port``, or ``unix:/path`` for a socket.
    :param options: deadline, retries, on_unavailable, token, tls (or give them as keywords).
    """

    def __init__(self, address: str, options: ClientOptions | None = None, **settings: Any) -> None:
        self.address = address
        self.options = calls.options_of(options, settings)
        opts = self.options.channel_options()
        if self.options.tls is not None:
            self._channel = grpc.secure_channel(address, self.options.tls.credentials(), opts)
        else:
            self._channel = grpc.insecure_channel(address, opts)
        self._enforcer = pb_grpc.EnforcerStub(self._channel)
        self._admin = admin_grpc.AdminStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()

    def _send(self, call: Call[T]) -> T:
        stub = self._enforcer if call.service == "enforcer" else self._admin
        method = getattr(stub, call.method)
        try:
            answer = method(
                call.request, timeout=self.options.deadline, metadata=self.options.metadata()
            )
        except grpc.RpcError as error:
            return call.failed(error, self.options)
        return call.read(answer)

    def check(
        self,
        workspace_id: str,
        who: ContactLike | None = None,
        *,
        occurred_at: datetime | None = None,
        **fields: str,
    ) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        return self._send(calls.check(workspace_id, who, fields, occurred_at))

    def activate(
        self,
        workspace_id: str,
        who: ContactLike | None = None,
        *,
        occurred_at: datetime | None = None,
        **fields: str,
    ) -> Decision:
        """Admit and count a new contact while below the limit; an active one is allowed.
        ``occurred_at`` (an aware datetime; default now) decides and counts it in the period
        it happened in."""
        return self._send(calls.activate(workspace_id, who, fields, occurred_at))

    def activate_batch(
        self,
        workspace_id: str,
        contacts: Sequence[ContactLike],
        *,
        occurred_at: datetime | None = None,
    ) -> BatchResult:
        """Decide contacts in order, in one atomic step."""
        return self._send(calls.activate_batch(workspace_id, contacts, occurred_at))

    def check_batch(
        self,
        workspace_id: str,
        contacts: Sequence[ContactLike],
        *,
        occurred_at: datetime | None = None,
    ) -> pb.CheckBatchResponse:
        """What ``activate_batch`` would answer now, with its totals; changes nothing."""
        return self._send(calls.check_batch(workspace_id, contacts, occurred_at))

    def activate_stream(
        self, requests: Iterable[StreamRequest]
    ) -> Iterator[Decision | StreamError]:
        """Decide ``ActivateRequest`` and ``CheckRequest`` messages (or
        ``ActivateStreamRequest``) on one stream: one answer per request, in order, a
        ``Decision`` or the ``StreamError`` of a message the sidecar refused. Build them with
        ``activate_request`` and ``check_request``, each with its own ``occurred_at``. The
        stream has no deadline and no ``on_unavailable`` policy: a broken stream raises
        ``grpc.RpcError`` (``UNAVAILABLE`` when the sidecar shuts down), and the requests not
        answered yet can be sent again."""
        call = self._enforcer.ActivateStream(
            (stream_request(r) for r in requests), metadata=self.options.metadata()
        )
        try:
            for response in call:
                yield stream_result(response)
        finally:
            call.cancel()

    def set_subscription(
        self, workspace_id: str, *, clear: Sequence[str] = (), **fields: Any
    ) -> admin_pb.Subscription:
        """Change the fields given (of ``SetSubscriptionRequest``; ``None`` = unchanged) of
        the workspace's subscription and clear those named in ``clear``; the rest stay. The
        first change of a workspace names a plan; ``flood_guard`` may be given as
        ``(new_per_minute, "FLAG" | "HOLD")``. Answers the whole subscription."""
        return self._send(calls.set_subscription(workspace_id, clear, fields))

    def get_subscription(self, workspace_id: str) -> admin_pb.Subscription:
        """The workspace's subscription, or the default plan's."""
        return self._send(calls.get_subscription(workspace_id))

    def get_usage(self, workspace_id: str, period: str = "") -> admin_pb.GetUsageResponse:
        """A period's usage (default the current one) and the history."""
        return self._send(calls.get_usage(workspace_id, period))

    def list_active_contacts(
        self, workspace_id: str, period: str = "", page_token: str = "", page_size: int = 0
    ) -> admin_pb.ListActiveContactsResponse:
        """One page of the contact keys counted in a period."""
        return self._send(calls.list_active_contacts(workspace_id, period, page_token, page_size))

    def list_statements(
        self, period: str, page_token: str = "", page_size: int = 0
    ) -> admin_pb.ListStatementsResponse:
        """One page of the statements of a closed month (``YYYY-MM``)."""
        return self._send(calls.list_statements(period, page_token, page_size))

    def statements(self, period: str, page_size: int = 0) -> Iterator[admin_pb.Statement]:
        """Every statement of a closed month, page after page."""
        token = ""
        while True:
            page = self.list_statements(period, token, page_size)
            yield from page.statements
            token = page.next_page_token
            if not token:
                return

    def list_audit_records(
        self,
        workspace_id: str,
        since: datetime | None = None,
        page_size: int = 0,
        page_token: str = "",
    ) -> admin_pb.ListAuditRecordsResponse:
        """One page of the workspace's audit trail, newest first, down to ``since`` (an aware
        datetime; ``None``: every record kept)."""
        return self._send(calls.list_audit_records(workspace_id, since, page_size, page_token))

    def audit_records(
        self, workspace_id: str, since: datetime | None = None, page_size: int = 0
    ) -> Iterator[admin_pb.AuditRecord]:
        """Every audit record of the workspace down to ``since``, newest first, page after
        page."""
        token = ""
        while True:
            page = self.list_audit_records(workspace_id, since, page_size, token)
            yield from page.records
            token = page.next_page_token
            if not token:
                return

    def merge(
        self, workspace_id: str, sources: Sequence[ContactLike], target: ContactLike
    ) -> admin_pb.MergeResponse:
        """Fold the sources' identities into the target's."""
        return self._send(calls.merge(workspace_id, sources, target))

    def set_exempt(
        self, workspace_id: str, contacts: Sequence[ContactLike], exempt: bool = True
    ) -> admin_pb.SetExemptResponse:
        """Exempt contacts (allowed, never counted), or make them countable again."""
        return self._send(calls.set_exempt(workspace_id, contacts, exempt))

    def forget(self, workspace_id: str, contact: ContactLike) -> admin_pb.ForgetResponse:
        """Erase the person ``contact`` resolves to: its links, exemption and place in every
        period kept (the counts stay; a returning person is a new contact)."""
        return self._send(calls.forget(workspace_id, contact))

    def watch_events(
        self, workspace_id: str = "", after_id: str = "", seconds: float | None = None
    ) -> Iterator[admin_pb.Event]:
        """Recorded events after ``after_id``, then live ones, for ``seconds`` (default: until
        the caller stops iterating)."""
        request = admin_pb.WatchEventsRequest(workspace_id=workspace_id, after_id=after_id)
        stream = self._admin.WatchEvents(request, timeout=seconds, metadata=self.options.metadata())
        try:
            yield from stream
        except grpc.RpcError as error:
            if error.code() is not grpc.StatusCode.DEADLINE_EXCEEDED or seconds is None:
                raise
        finally:
            stream.cancel()

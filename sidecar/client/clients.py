"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the sidecar's API with deadlines,
retries, TLS, the admin token and a policy for an unreachable sidecar."""

from __future__ import annotations

from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from typing import Any

import grpc

from sidecar.client.options import ClientOptions
from sidecar.client.results import (
    BatchResult,
    Decision,
    StreamError,
    StreamRequest,
    batch_of,
    contact,
    decision_of,
    stream_request,
    stream_result,
    unavailable,
)
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import admin_pb2_grpc as admin_grpc
from sidecar.gen.mac.v1 import enforcer_pb2 as pb
from sidecar.gen.mac.v1 import enforcer_pb2_grpc as pb_grpc

ContactLike = pb.Contact | Mapping[str, str]
# no decision came back: the sidecar is down, hangs, or is too busy to take the call
_NO_ANSWER = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def _contacts(contacts: Sequence[ContactLike]) -> list[pb.Contact]:
    return [contact(c) for c in contacts]


def _subscription_request(
    workspace_id: str, clear: Sequence[str], fields: dict[str, Any]
) -> admin_pb.SetSubscriptionRequest:
    """The request of ``set_subscription``: the fields given (``None`` = not given,
    ``starts_at`` a datetime), and an update mask naming them and ``clear`` when something
    is to be cleared."""
    given = {name: value for name, value in fields.items() if value is not None}
    starts_at = given.pop("starts_at", None)
    request = admin_pb.SetSubscriptionRequest(workspace_id=workspace_id, **given)
    if starts_at is not None:
        request.starts_at.FromDatetime(starts_at)
        given["starts_at"] = starts_at
    if clear:
        request.update_mask.paths.extend([*given, *clear])
    return request


async def _stream_requests(
    requests: AsyncIterable[StreamRequest] | Iterable[StreamRequest],
) -> AsyncIterator[pb.ActivateStreamRequest]:
    if isinstance(requests, AsyncIterable):
        async for request in requests:
            yield stream_request(request)
    else:
        for request in requests:
            yield stream_request(request)


class _Base:
    def __init__(self, address: str, options: ClientOptions | None, **settings: Any) -> None:
        if options is not None and settings:
            raise TypeError("give options or keyword settings, not both")
        self.address = address
        self.options = options or ClientOptions(**settings)

    def _policy(self, error: grpc.RpcError, batch: int | None) -> Decision | BatchResult:
        # a sidecar that is down answers UNAVAILABLE; one that hangs or is cut off lets the
        # deadline pass: both are "no answer" to a caller that chose allow or deny
        if error.code() not in _NO_ANSWER or self.options.on_unavailable == "raise":
            raise error
        allowed = self.options.on_unavailable == "allow"
        if batch is None:
            return unavailable(allowed)
        return BatchResult([unavailable(allowed) for _ in range(batch)], None)


class Client(_Base):
    """A blocking client of one sidecar.

    ``Client("127.0.0.1:50051").activate("acme", email="ana@example.com")`` answers a
    ``Decision`` with ``.allowed``, ``.reason`` and ``.usage``. Errors other than those the
    ``on_unavailable`` policy answers raise ``grpc.RpcError`` with the sidecar's status
    (``INVALID_ARGUMENT`` naming the field, ``UNAUTHENTICATED``, ...).

    :param address: ``host:port``, or ``unix:/path`` for a socket.
    :param options: deadline, retries, on_unavailable, token, tls (or give them as keywords).
    """

    def __init__(self, address: str, options: ClientOptions | None = None, **settings: Any) -> None:
        super().__init__(address, options, **settings)
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

    def _call(self, method: Callable[..., Any], request: Any) -> Any:
        return method(request, timeout=self.options.deadline, metadata=self.options.metadata())

    def _decide(self, method: Callable[..., pb.Decision], request: Any) -> Decision:
        try:
            return decision_of(self._call(method, request))
        except grpc.RpcError as error:
            return self._policy(error, None)  # type: ignore[return-value]

    def check(self, workspace_id: str, who: ContactLike | None = None, **fields: str) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        request = pb.CheckRequest(workspace_id=workspace_id, contact=contact(who, **fields))
        return self._decide(self._enforcer.Check, request)

    def activate(
        self, workspace_id: str, who: ContactLike | None = None, **fields: str
    ) -> Decision:
        """Admit and count a new contact while below the limit; an active one is allowed."""
        request = pb.ActivateRequest(workspace_id=workspace_id, contact=contact(who, **fields))
        return self._decide(self._enforcer.Activate, request)

    def activate_batch(self, workspace_id: str, contacts: Sequence[ContactLike]) -> BatchResult:
        """Decide contacts in order, in one atomic step."""
        request = pb.ActivateBatchRequest(workspace_id=workspace_id, contacts=_contacts(contacts))
        try:
            return batch_of(self._call(self._enforcer.ActivateBatch, request))
        except grpc.RpcError as error:
            return self._policy(error, len(contacts))  # type: ignore[return-value]

    def check_batch(
        self, workspace_id: str, contacts: Sequence[ContactLike]
    ) -> pb.CheckBatchResponse:
        """What ``activate_batch`` would answer now, with its totals; changes nothing."""
        request = pb.CheckBatchRequest(workspace_id=workspace_id, contacts=_contacts(contacts))
        found: pb.CheckBatchResponse = self._call(self._enforcer.CheckBatch, request)
        return found

    def activate_stream(
        self, requests: Iterable[StreamRequest]
    ) -> Iterator[Decision | StreamError]:
        """Decide ``ActivateRequest`` and ``CheckRequest`` messages (or
        ``ActivateStreamRequest``) on one stream: one answer per request, in order, a
        ``Decision`` or the ``StreamError`` of a message the sidecar refused. The stream has no
        deadline and no ``on_unavailable`` policy: a broken stream raises ``grpc.RpcError``
        (``UNAVAILABLE`` when the sidecar shuts down), and the requests not answered yet
        can be sent again."""
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
        first change of a workspace names a plan. Answers the whole subscription."""
        request = _subscription_request(workspace_id, clear, fields)
        found: admin_pb.Subscription = self._call(self._admin.SetSubscription, request)
        return found

    def get_subscription(self, workspace_id: str) -> admin_pb.Subscription:
        """The workspace's subscription, or the default plan's."""
        request = admin_pb.GetSubscriptionRequest(workspace_id=workspace_id)
        found: admin_pb.Subscription = self._call(self._admin.GetSubscription, request)
        return found

    def get_usage(self, workspace_id: str, period: str = "") -> admin_pb.GetUsageResponse:
        """A period's usage (default the current one) and the history."""
        request = admin_pb.GetUsageRequest(workspace_id=workspace_id, period=period)
        found: admin_pb.GetUsageResponse = self._call(self._admin.GetUsage, request)
        return found

    def list_active_contacts(
        self, workspace_id: str, period: str = "", page_token: str = "", page_size: int = 0
    ) -> admin_pb.ListActiveContactsResponse:
        """One page of the contact keys counted in a period."""
        request = admin_pb.ListActiveContactsRequest(
            workspace_id=workspace_id, period=period, page_token=page_token, page_size=page_size
        )
        found: admin_pb.ListActiveContactsResponse = self._call(
            self._admin.ListActiveContacts, request
        )
        return found

    def merge(
        self, workspace_id: str, sources: Sequence[ContactLike], target: ContactLike
    ) -> admin_pb.MergeResponse:
        """Fold the sources' identities into the target's."""
        request = admin_pb.MergeRequest(
            workspace_id=workspace_id, sources=_contacts(sources), target=contact(target)
        )
        found: admin_pb.MergeResponse = self._call(self._admin.Merge, request)
        return found

    def set_exempt(
        self, workspace_id: str, contacts: Sequence[ContactLike], exempt: bool = True
    ) -> admin_pb.SetExemptResponse:
        """Exempt contacts (allowed, never counted), or make them countable again."""
        request = admin_pb.SetExemptRequest(
            workspace_id=workspace_id, contacts=_contacts(contacts), exempt=exempt
        )
        found: admin_pb.SetExemptResponse = self._call(self._admin.SetExempt, request)
        return found

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


class AsyncClient(_Base):
    """An asyncio client of one sidecar, the same calls as ``Client``, awaited.

    :param address: ``host:port``, or ``unix:/path`` for a socket.
    :param options: deadline, retries, on_unavailable, token, tls (or give them as keywords).
    """

    def __init__(self, address: str, options: ClientOptions | None = None, **settings: Any) -> None:
        super().__init__(address, options, **settings)
        opts = self.options.channel_options()
        if self.options.tls is not None:
            self._channel = grpc.aio.secure_channel(address, self.options.tls.credentials(), opts)
        else:
            self._channel = grpc.aio.insecure_channel(address, opts)
        self._enforcer = pb_grpc.EnforcerStub(self._channel)
        self._admin = admin_grpc.AdminStub(self._channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel."""
        await self._channel.close()

    async def _call(self, method: Callable[..., Any], request: Any) -> Any:
        return await method(
            request, timeout=self.options.deadline, metadata=self.options.metadata()
        )

    async def _decide(self, method: Callable[..., Any], request: Any) -> Decision:
        try:
            return decision_of(await self._call(method, request))
        except grpc.RpcError as error:
            return self._policy(error, None)  # type: ignore[return-value]

    async def check(
        self, workspace_id: str, who: ContactLike | None = None, **fields: str
    ) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        request = pb.CheckRequest(workspace_id=workspace_id, contact=contact(who, **fields))
        return await self._decide(self._enforcer.Check, request)

    async def activate(
        self, workspace_id: str, who: ContactLike | None = None, **fields: str
    ) -> Decision:
        """Admit and count a new contact while below the limit; an active one is allowed."""
        request = pb.ActivateRequest(workspace_id=workspace_id, contact=contact(who, **fields))
        return await self._decide(self._enforcer.Activate, request)

    async def activate_batch(
        self, workspace_id: str, contacts: Sequence[ContactLike]
    ) -> BatchResult:
        """Decide contacts in order, in one atomic step."""
        request = pb.ActivateBatchRequest(workspace_id=workspace_id, contacts=_contacts(contacts))
        try:
            return batch_of(await self._call(self._enforcer.ActivateBatch, request))
        except grpc.RpcError as error:
            return self._policy(error, len(contacts))  # type: ignore[return-value]

    async def check_batch(
        self, workspace_id: str, contacts: Sequence[ContactLike]
    ) -> pb.CheckBatchResponse:
        """What ``activate_batch`` would answer now, with its totals; changes nothing."""
        request = pb.CheckBatchRequest(workspace_id=workspace_id, contacts=_contacts(contacts))
        found: pb.CheckBatchResponse = await self._call(self._enforcer.CheckBatch, request)
        return found

    async def activate_stream(
        self, requests: AsyncIterable[StreamRequest] | Iterable[StreamRequest]
    ) -> AsyncGenerator[Decision | StreamError, None]:
        """Decide ``ActivateRequest`` and ``CheckRequest`` messages (or
        ``ActivateStreamRequest``) on one stream: one answer per request, in order, a
        ``Decision`` or the ``StreamError`` of a message the sidecar refused. The sidecar
        decides up to 256 of a stream's messages at once, so keep many in flight for
        throughput. The stream has no deadline and no ``on_unavailable`` policy: a broken
        stream raises ``grpc.RpcError`` (``UNAVAILABLE`` when the sidecar shuts down), and
        the requests not answered yet can be sent again."""
        call = self._enforcer.ActivateStream(
            _stream_requests(requests), metadata=self.options.metadata()
        )
        try:
            async for response in call:
                yield stream_result(response)
        finally:
            call.cancel()

    async def set_subscription(
        self, workspace_id: str, *, clear: Sequence[str] = (), **fields: Any
    ) -> admin_pb.Subscription:
        """Change the fields given (of ``SetSubscriptionRequest``; ``None`` = unchanged) of
        the workspace's subscription and clear those named in ``clear``; the rest stay. The
        first change of a workspace names a plan. Answers the whole subscription."""
        request = _subscription_request(workspace_id, clear, fields)
        found: admin_pb.Subscription = await self._call(self._admin.SetSubscription, request)
        return found

    async def get_subscription(self, workspace_id: str) -> admin_pb.Subscription:
        """The workspace's subscription, or the default plan's."""
        request = admin_pb.GetSubscriptionRequest(workspace_id=workspace_id)
        found: admin_pb.Subscription = await self._call(self._admin.GetSubscription, request)
        return found

    async def get_usage(self, workspace_id: str, period: str = "") -> admin_pb.GetUsageResponse:
        """A period's usage (default the current one) and the history."""
        request = admin_pb.GetUsageRequest(workspace_id=workspace_id, period=period)
        found: admin_pb.GetUsageResponse = await self._call(self._admin.GetUsage, request)
        return found

    async def list_active_contacts(
        self, workspace_id: str, period: str = "", page_token: str = "", page_size: int = 0
    ) -> admin_pb.ListActiveContactsResponse:
        """One page of the contact keys counted in a period."""
        request = admin_pb.ListActiveContactsRequest(
            workspace_id=workspace_id, period=period, page_token=page_token, page_size=page_size
        )
        page: admin_pb.ListActiveContactsResponse = await self._call(
            self._admin.ListActiveContacts, request
        )
        return page

    async def merge(
        self, workspace_id: str, sources: Sequence[ContactLike], target: ContactLike
    ) -> admin_pb.MergeResponse:
        """Fold the sources' identities into the target's."""
        request = admin_pb.MergeRequest(
            workspace_id=workspace_id, sources=_contacts(sources), target=contact(target)
        )
        found: admin_pb.MergeResponse = await self._call(self._admin.Merge, request)
        return found

    async def set_exempt(
        self, workspace_id: str, contacts: Sequence[ContactLike], exempt: bool = True
    ) -> admin_pb.SetExemptResponse:
        """Exempt contacts (allowed, never counted), or make them countable again."""
        request = admin_pb.SetExemptRequest(
            workspace_id=workspace_id, contacts=_contacts(contacts), exempt=exempt
        )
        found: admin_pb.SetExemptResponse = await self._call(self._admin.SetExempt, request)
        return found

    async def watch_events(
        self, workspace_id: str = "", after_id: str = ""
    ) -> AsyncIterator[admin_pb.Event]:
        """Recorded events after ``after_id``, then live ones, until the caller stops."""
        request = admin_pb.WatchEventsRequest(workspace_id=workspace_id, after_id=after_id)
        call = self._admin.WatchEvents(request, metadata=self.options.metadata())
        try:
            async for event in call:
                yield event
        finally:
            call.cancel()

"""The sidecar's unary calls apart from how they are sent: each builds its request and says how
its answer is read, and what answers for a sidecar that gave none; ``Client`` and
``AsyncClient`` only send them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import grpc

from sidecar.client.options import ClientOptions
from sidecar.client.results import (
    BatchResult,
    Decision,
    batch_of,
    contact,
    decision_of,
    unavailable,
)
from sidecar.gen.mac.v1 import admin_pb2 as admin_pb
from sidecar.gen.mac.v1 import enforcer_pb2 as pb

T = TypeVar("T")
ContactLike = pb.Contact | Mapping[str, str]
# no decision came back: the sidecar is down, hangs, or is too busy to take the call
_NO_ANSWER = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One unary call, ready to send.

    :param service: the stub it goes through.
    :param method: the RPC's name on that stub (``"Activate"``).
    :param request: the request message.
    :param read: the answer as the client returns it.
    :param unanswered: the answer of the ``on_unavailable`` policy, given whether it allows;
        ``None``: the call has no policy and every error raises.
    """

    service: Literal["enforcer", "admin"]
    method: str
    request: Any
    read: Callable[[Any], T]
    unanswered: Callable[[bool], T] | None = None

    def failed(self, error: grpc.RpcError, options: ClientOptions) -> T:
        """What the call answers when it ended with ``error``.

        :raise grpc.RpcError: ``error``, unless the policy answers it.
        """
        # a sidecar that is down answers UNAVAILABLE; one that hangs or is cut off lets the
        # deadline pass: both are "no answer" to a caller that chose allow or deny
        if (
            self.unanswered is None
            or error.code() not in _NO_ANSWER
            or options.on_unavailable == "raise"
        ):
            raise error
        return self.unanswered(options.on_unavailable == "allow")


def options_of(options: ClientOptions | None, settings: Mapping[str, Any]) -> ClientOptions:
    """A client's options: ``options``, or made of keyword ``settings``.

    :raise TypeError: when both are given.
    """
    if options is not None and settings:
        raise TypeError("give options or keyword settings, not both")
    return options or ClientOptions(**settings)


def _message(answer: Any) -> Any:
    return answer


def _contacts(contacts: Sequence[ContactLike]) -> list[pb.Contact]:
    return [contact(c) for c in contacts]


def check(
    workspace_id: str,
    who: ContactLike | None,
    fields: Mapping[str, str],
    occurred_at: datetime | None = None,
) -> Call[Decision]:
    """``Check``: what ``Activate`` would answer."""
    request = check_request(workspace_id, who, occurred_at=occurred_at, **fields)
    return Call("enforcer", "Check", request, decision_of, unavailable)


def activate(
    workspace_id: str,
    who: ContactLike | None,
    fields: Mapping[str, str],
    occurred_at: datetime | None = None,
) -> Call[Decision]:
    """``Activate``: admit and count a contact."""
    request = activate_request(workspace_id, who, occurred_at=occurred_at, **fields)
    return Call("enforcer", "Activate", request, decision_of, unavailable)


def activate_batch(
    workspace_id: str, contacts: Sequence[ContactLike], occurred_at: datetime | None = None
) -> Call[BatchResult]:
    """``ActivateBatch``: contacts decided in order, in one atomic step."""
    request = pb.ActivateBatchRequest(workspace_id=workspace_id, contacts=_contacts(contacts))
    _set_occurred_at(request, occurred_at)

    def unanswered(allowed: bool) -> BatchResult:
        return BatchResult([unavailable(allowed) for _ in contacts], None)

    return Call("enforcer", "ActivateBatch", request, batch_of, unanswered)


def check_batch(
    workspace_id: str, contacts: Sequence[ContactLike], occurred_at: datetime | None = None
) -> Call[pb.CheckBatchResponse]:
    """``CheckBatch``: what ``ActivateBatch`` would answer, with its totals."""
    request = pb.CheckBatchRequest(workspace_id=workspace_id, contacts=_contacts(contacts))
    _set_occurred_at(request, occurred_at)
    return Call("enforcer", "CheckBatch", request, _message)


def activate_request(
    workspace_id: str,
    who: ContactLike | None = None,
    *,
    occurred_at: datetime | None = None,
    **fields: str,
) -> pb.ActivateRequest:
    """An ``ActivateRequest`` (for ``activate_stream`` too): the contact as ``contact`` takes
    it, and when it happened (an aware datetime; ``None``: now).

    :raise ValueError: ``occurred_at`` without a time zone.
    """
    request = pb.ActivateRequest(workspace_id=workspace_id, contact=contact(who, **fields))
    _set_occurred_at(request, occurred_at)
    return request


def check_request(
    workspace_id: str,
    who: ContactLike | None = None,
    *,
    occurred_at: datetime | None = None,
    **fields: str,
) -> pb.CheckRequest:
    """A ``CheckRequest``, as ``activate_request`` builds one."""
    request = pb.CheckRequest(workspace_id=workspace_id, contact=contact(who, **fields))
    _set_occurred_at(request, occurred_at)
    return request


def _set_occurred_at(
    request: pb.ActivateRequest | pb.CheckRequest | pb.ActivateBatchRequest | pb.CheckBatchRequest,
    occurred_at: datetime | None,
) -> None:
    if occurred_at is None:
        return
    if occurred_at.tzinfo is None or occurred_at.utcoffset() is None:
        raise ValueError("occurred_at needs a time zone (an aware datetime)")
    request.occurred_at.FromDatetime(occurred_at)


def set_subscription(
    workspace_id: str, clear: Sequence[str], fields: Mapping[str, Any]
) -> Call[admin_pb.Subscription]:
    """``SetSubscription`` of the fields given (``None`` = not given, ``starts_at`` a
    datetime, ``flood_guard`` a ``FloodGuard`` or ``(new_per_minute, "FLAG" | "HOLD")``),
    with an update mask naming them and ``clear`` when something is to be cleared."""
    given = {name: value for name, value in fields.items() if value is not None}
    if isinstance(given.get("flood_guard"), tuple):
        given["flood_guard"] = flood_guard(*given["flood_guard"])
    starts_at = given.pop("starts_at", None)
    request = admin_pb.SetSubscriptionRequest(workspace_id=workspace_id, **given)
    if starts_at is not None:
        request.starts_at.FromDatetime(starts_at)
        given["starts_at"] = starts_at
    if clear:
        request.update_mask.paths.extend([*given, *clear])
    return Call("admin", "SetSubscription", request, _message)


def flood_guard(new_per_minute: int, action: str) -> admin_pb.FloodGuard:
    """A ``mac.v1.FloodGuard``: ``action`` is ``"FLAG"`` or ``"HOLD"`` (any case)."""
    name = "ACTION_" + action.upper().removeprefix("ACTION_")
    if name not in ("ACTION_FLAG", "ACTION_HOLD"):
        raise ValueError(f"flood guard action must be FLAG or HOLD, not {action!r}")
    return admin_pb.FloodGuard(new_per_minute=new_per_minute, action=name)


def get_subscription(workspace_id: str) -> Call[admin_pb.Subscription]:
    """``GetSubscription``."""
    request = admin_pb.GetSubscriptionRequest(workspace_id=workspace_id)
    return Call("admin", "GetSubscription", request, _message)


def get_usage(workspace_id: str, period: str) -> Call[admin_pb.GetUsageResponse]:
    """``GetUsage`` of a period (``""``: the current one)."""
    request = admin_pb.GetUsageRequest(workspace_id=workspace_id, period=period)
    return Call("admin", "GetUsage", request, _message)


def list_active_contacts(
    workspace_id: str, period: str, page_token: str, page_size: int
) -> Call[admin_pb.ListActiveContactsResponse]:
    """``ListActiveContacts``: one page."""
    request = admin_pb.ListActiveContactsRequest(
        workspace_id=workspace_id, period=period, page_token=page_token, page_size=page_size
    )
    return Call("admin", "ListActiveContacts", request, _message)


def merge(
    workspace_id: str, sources: Sequence[ContactLike], target: ContactLike
) -> Call[admin_pb.MergeResponse]:
    """``Merge``: the sources' identities folded into the target's."""
    request = admin_pb.MergeRequest(
        workspace_id=workspace_id, sources=_contacts(sources), target=contact(target)
    )
    return Call("admin", "Merge", request, _message)


def set_exempt(
    workspace_id: str, contacts: Sequence[ContactLike], exempt: bool
) -> Call[admin_pb.SetExemptResponse]:
    """``SetExempt``: contacts exempted, or made countable again."""
    request = admin_pb.SetExemptRequest(
        workspace_id=workspace_id, contacts=_contacts(contacts), exempt=exempt
    )
    return Call("admin", "SetExempt", request, _message)


def list_statements(
    period: str, page_token: str, page_size: int
) -> Call[admin_pb.ListStatementsResponse]:
    """``ListStatements``: one page of a closed month's statements."""
    request = admin_pb.ListStatementsRequest(
        period=period, page_token=page_token, page_size=page_size
    )
    return Call("admin", "ListStatements", request, _message)


def list_audit_records(
    workspace_id: str, since: datetime | None, page_size: int, page_token: str
) -> Call[admin_pb.ListAuditRecordsResponse]:
    """``ListAuditRecords``: one page of a workspace's audit trail, newest first, down to
    ``since`` (``None``: every record kept).

    :raise ValueError: ``since`` without a time zone.
    """
    request = admin_pb.ListAuditRecordsRequest(
        workspace_id=workspace_id, page_size=page_size, page_token=page_token
    )
    if since is not None:
        if since.tzinfo is None or since.utcoffset() is None:
            raise ValueError("since needs a time zone (an aware datetime)")
        request.since.FromDatetime(since)
    return Call("admin", "ListAuditRecords", request, _message)


def forget(workspace_id: str, contact_like: ContactLike) -> Call[admin_pb.ForgetResponse]:
    """``Forget``: the person the contact resolves to erased; its counts stay."""
    request = admin_pb.ForgetRequest(workspace_id=workspace_id, contact=contact(contact_like))
    return Call("admin", "Forget", request, _message)

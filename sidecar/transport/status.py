"""The one mapping from errors to gRPC status codes, and how a failed call is logged."""

from __future__ import annotations

from typing import Any

import grpc

from sidecar import metrics
from sidecar.domain.contact import WORKSPACE_ID
from sidecar.domain.errors import (
    Aborted,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    StorageError,
    Unauthenticated,
    Unavailable,
)
from sidecar.logs import get_logger

log = get_logger("sidecar.transport")
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
    if isinstance(exc, ResourceExhausted):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, Unavailable):
        return grpc.StatusCode.UNAVAILABLE, str(exc)
    if isinstance(exc, DeadlineExceeded):
        return grpc.StatusCode.DEADLINE_EXCEEDED, str(exc)
    if isinstance(exc, Aborted):
        return grpc.StatusCode.ABORTED, str(exc)
    if isinstance(exc, StorageError) and exc.transient:
        return grpc.StatusCode.UNAVAILABLE, "the counting backend (Redis) is unavailable"
    return grpc.StatusCode.INTERNAL, "internal error; the sidecar's log has the details"


def loggable(workspace: str) -> str:
    """A workspace id as logs may show it: as it is when valid, else a placeholder (a refused
    id may be anything, an email address included)."""
    return workspace if WORKSPACE_ID.fullmatch(workspace) else "(not a workspace id)"


def counted_status(
    what: str, method: str, exc: Exception, workspace: str = ""
) -> tuple[grpc.StatusCode, str]:
    """The status of ``exc``, logged as it deserves and counted under ``method``; ``what``
    names the failed thing in the log (``rpc``, or one ``message`` of a stream).

    Our faults log at error with the traceback, an unreachable Redis at warning, a caller's
    mistake at info. The message of an error never holds an email or phone number: input
    errors name the field, not the value.
    """
    code, details = status_for(exc)
    workspace = loggable(workspace) if workspace else ""
    if code is grpc.StatusCode.INTERNAL:
        log.error(f"{what} failed", method=method, workspace=workspace, exc_info=exc)
    elif code is grpc.StatusCode.UNAVAILABLE:
        log.warning(f"{what} failed", method=method, workspace=workspace, error=str(exc))
    else:
        log.info(
            f"{what} refused", method=method, workspace=workspace, code=code.name, error=details
        )
    metrics.REQUESTS.labels(method, code.name).inc()
    return code, details


async def abort_with(context: Context, method: str, exc: Exception, workspace: str = "") -> None:
    """Log ``exc`` as it deserves, count the call by its status, and end it with that status
    (``counted_status``)."""
    code, details = counted_status("rpc", method, exc, workspace)
    await context.abort(code, details)

"""The ``sidecar`` command's exit statuses, one table, and which a failed call ends with."""

from __future__ import annotations

import grpc

OK = 0
"""Admitted, allowed, or done."""
DENIED = 1
"""A decision that denies (``activate``, ``check``), or a batch that would not fit."""
USAGE = 2
"""Bad input or usage: a flag, a file, an address, a token, or a request the sidecar refused
as the caller's mistake."""
UNAVAILABLE = 3
"""The sidecar is unreachable, unavailable (its Redis too), overloaded or too slow."""
FAILED = 4
"""Anything else: the sidecar failed, or the command met an error of its own."""
BROKEN_PIPE = 141
"""Standard output was closed early (``| head``): the command stops quietly, as the shell
reports a Unix tool stopped by SIGPIPE."""
INTERRUPTED = 130
"""Ctrl-C."""

TABLE = (
    (OK, "admitted, allowed, or done"),
    (DENIED, "denied, or a batch that would not fit"),
    (
        USAGE,
        "bad input or usage: flags, files, addresses, TLS options, the admin token, a refused call",
    ),
    (
        UNAVAILABLE,
        "the sidecar is unreachable or unavailable (its Redis too), or the call timed out",
    ),
    (FAILED, "anything else: the sidecar or the command failed"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
    (BROKEN_PIPE, "its output was closed early (| head): it stops quietly"),
)
"""Every exit status with what it means, as `sidecar --help` and the docs show it."""

_USAGE_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
    }
)
_UNAVAILABLE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
    }
)


def of_status(code: grpc.StatusCode) -> int:
    """The exit status of a call that failed with ``code``."""
    if code in _USAGE_CODES:
        return USAGE
    if code in _UNAVAILABLE_CODES:
        return UNAVAILABLE
    return FAILED


def epilog() -> str:
    """The table as the help's epilog."""
    return "exit status:\n" + "\n".join(f"  {status:<4}{text}" for status, text in TABLE)

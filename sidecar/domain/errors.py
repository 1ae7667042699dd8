"""The few error types of the service; each becomes one gRPC status in
``transport.status.status_for``."""

from __future__ import annotations

from sidecar.domain.basis import SubscriptionBasis

QUOTE_MAX = 24


def quoted(value: str) -> str:
    """A caller's value as an error may show it: at most ``QUOTE_MAX`` characters, anything
    but printable ASCII replaced by ``?``, and nothing at all when it looks like an email
    address or a phone number (an error message reaches logs)."""
    if "@" in value or sum(c.isdigit() for c in value) >= 7:
        return "(the value given)"
    shown = "".join(c if " " <= c <= "~" else "?" for c in value[:QUOTE_MAX])
    return repr(shown + ("..." if len(value) > QUOTE_MAX else ""))


class MacError(Exception):
    """Base of every error the service raises on purpose."""


class InvalidArgument(MacError):
    """A caller sent something malformed; ``field`` names the offending request field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class FailedPrecondition(MacError):
    """A well-formed request that the current state or the plan catalog does not allow."""


class NotFound(MacError):
    """The request names something that does not exist."""


class Unauthenticated(MacError):
    """A missing or wrong admin token."""


class ResourceExhausted(MacError):
    """More work than the service takes at once (open streams); retrying later can succeed."""


class Unavailable(MacError):
    """The service cannot take the call now (it is shutting down); another replica can."""


class Aborted(MacError):
    """A change lost a race with concurrent changes of the same thing; retrying can succeed."""


class DeadlineExceeded(MacError):
    """The caller's deadline passed before the work started."""


class StorageError(MacError):
    """Redis failed to answer.

    :param transient: true when retrying later can succeed (connection lost, timeout,
        failover in progress); false for errors a retry cannot fix (a script bug).
    :param outcome_unknown: true when the command may have run in Redis all the same: it
        was sent, then its reply timed out or its connection was lost. False when it was
        refused before it was sent (Redis down) or answered with an error.
    """

    transient: bool
    outcome_unknown: bool

    def __init__(self, message: str, *, transient: bool, outcome_unknown: bool = False) -> None:
        super().__init__(message)
        self.transient = transient
        self.outcome_unknown = outcome_unknown


class PeriodClosed(FailedPrecondition):
    """The period a decision falls in is closed: its count is final. Nothing was written.

    :param closed_at_ms: when it closed (unix ms).
    """

    def __init__(self, period_name: str, closed_at_ms: int) -> None:
        super().__init__(f"occurred_at: period {period_name} is closed")
        self.period_name = period_name
        self.closed_at_ms = closed_at_ms


class StaleSubscription(MacError):
    """The subscription changed since the caller computed the period from it; carries what
    the period depends on now. Handled inside the service; never reaches a caller."""

    def __init__(self, basis: SubscriptionBasis) -> None:
        super().__init__(f"subscription version {basis.version}")
        self.basis = basis


class ConfigError(MacError):
    """Settings that the service cannot start with."""

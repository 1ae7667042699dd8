"""What webhook delivery handles: whose a workspace's lease is, the entries of its events
stream, and how a request to the receiver went."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from sidecar.domain.decision import Event


class Lease(enum.Enum):
    """Whose a workspace's webhook lease is, when the workspace has something to deliver."""

    NONE = ""  # nothing to deliver
    MINE = "mine"  # this consumer's: it is to deliver
    OTHER = "other"
    FREE = "free"


@dataclass(frozen=True, slots=True)
class WorkspacePoll:
    """What a look at one workspace found.

    :param oldest_ms: when the oldest event not yet delivered was recorded (unix ms of its
        stream id), 0 when every event was delivered.
    """

    workspace_id: str
    oldest_ms: int
    lease: Lease


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """An entry of the group's pending list or a new one; ``event`` is None when the entry
    was trimmed from the stream while it was pending."""

    id: str
    event: Event | None


@dataclass(frozen=True, slots=True)
class NewEntries:
    """Entries read for the first time, and how many were trimmed before anyone read them."""

    entries: list[StreamEntry]
    skipped: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """How one request to the webhook receiver went.

    :param reason: why it did not deliver: ``status``, ``timeout`` or ``connection``.
    :param detail: what happened, for the log (``HTTP 500``, ``connection refused``).
    """

    delivered: bool
    reason: str = ""
    detail: str = ""

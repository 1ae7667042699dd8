"""The audit trail: what an Admin call that changes a workspace records, in the same atomic
step as the change, and the storage contract of reading it back (``ports.py`` has the rest).

A record never holds a contact's identifier, in clear or as a digest: a subscription change
records its fields' values, a merge or an exemption counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

DAY_MS = 86_400_000
# Days a record is kept unless configured otherwise (MAC_AUDIT_RETENTION_DAYS).
RETENTION_DAYS = 400


@dataclass(frozen=True, slots=True)
class AuditContext:
    """Who makes a change, through which Admin method, and when: what its audit record is
    written with.

    :param admin: the admin's name.
    :param method: the Admin method (``SetSubscription``, ``Merge``, ``SetExempt``, ...).
    :param at_ms: the instant of the change (unix ms).
    """

    admin: str
    method: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class AuditChange:
    """One field's value before and after a change, as text (``before`` is empty when it had
    none, and for a count, which has an ``after`` alone)."""

    field: str
    before: str
    after: str


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One Admin call that changed, or could have changed, a workspace.

    :param id: unique within the workspace, increasing with time.
    :param changed: false when the call changed nothing (the same values set again).
    :param changes: what changed, with the API's field names.
    """

    id: str
    at: datetime
    admin: str
    method: str
    workspace_id: str
    changed: bool
    changes: tuple[AuditChange, ...] = ()


class AuditStore(Protocol):
    """What reading the audit trail needs."""

    async def audit_records(
        self, workspace_id: str, *, before_id: str, oldest_ms: int, count: int
    ) -> list[AuditRecord]:
        """Up to ``count`` of the workspace's records, newest first: those before the record
        ``before_id`` ("" to start from the newest) recorded at or after ``oldest_ms``."""
        ...

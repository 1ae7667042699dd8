"""The storage contract of forgetting a person and of bounding the links: the request and its
reply, and the stores they go to (``ports.py`` has the rest)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.domain.audit import AuditContext
from sidecar.domain.contact import KeyedContact


@dataclass(frozen=True, slots=True)
class ForgetRequest:
    """Erase the person ``contact`` resolves to in the current period (``period_keys[0]``).

    :param period_keys: every period whose members may still hold the person, the current
        one first.
    :param audit: who forgets, and when: recorded in the audit trail in the same step.
    """

    workspace_id: str
    contact: KeyedContact
    period_keys: Sequence[str]
    audit: AuditContext


@dataclass(frozen=True, slots=True)
class Forgotten:
    """What a Forget erased: whether anything was known of the person, its identifiers
    erased, and the periods it was counted in (where it stays counted, anonymously)."""

    forgotten: bool
    identifiers_removed: int
    periods: int


class ForgetStore(Protocol):
    """What Forget needs."""

    async def counted_periods(self, workspace_id: str) -> list[str]:
        """The keys of the periods the workspace's counts hash has a count for."""
        ...

    async def indexed(self, workspace_id: str) -> bool:
        """Whether every link of the workspace is in its identity index."""
        ...

    async def backfill(
        self, workspace_id: str, ordinal: int, renew: Callable[[], Awaitable[bool]] | None = None
    ) -> bool:
        """File every link of the workspace in its identity index (entries made are stamped
        ``ordinal``), then mark the workspace indexed; False when ``renew`` said to stop."""
        ...

    async def forget(self, request: ForgetRequest) -> Forgotten:
        """Erase the person in one step."""
        ...

    async def rewrite_history(self, workspace_id: str) -> str:
        """Have the Redis holding the workspace rewrite its append-only file, so that the
        commands that wrote the person's keys leave it: ``started``, ``off`` (no AOF), or
        why it was refused."""
        ...


class LinkExpiryStore(Protocol):
    """What the links sweep needs besides ``ForgetStore``'s backfill."""

    async def indexed(self, workspace_id: str) -> bool: ...

    async def backfill(
        self, workspace_id: str, ordinal: int, renew: Callable[[], Awaitable[bool]] | None = None
    ) -> bool: ...

    async def expire_links(
        self, workspace_id: str, cutoff: int, renew: Callable[[], Awaitable[bool]] | None = None
    ) -> int:
        """Delete the links of the workspace's identities stamped at or before ``cutoff``;
        how many identities lost them."""
        ...


def period_ordinal(period_key: str) -> int:
    """A period key's ordinal, as the identity index stamps it (``lib/index.lua``): year x 12
    + month - 1 of its ``YYYY-MM`` (``2026-11`` and ``2026-11@<unix s>`` alike)."""
    return int(period_key[:4]) * 12 + int(period_key[5:7]) - 1

"""The storage contract of closing periods and listing statements: the periods a workspace
has to close, a close and its reply, and the store they go to (``ports.py`` has the rest)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.period import BillingPeriod
from sidecar.domain.statement import Statement


@dataclass(frozen=True, slots=True)
class WorkspacePeriods:
    """What closing a workspace's periods starts from: its subscription basis (time zone and
    start, which the periods' bounds follow), its counted periods (keys) and those closed
    (key -> closed at, unix ms)."""

    workspace_id: str
    basis: SubscriptionBasis
    counted: list[str]
    closed: dict[str, int]


@dataclass(frozen=True, slots=True)
class CloseRequest:
    """Close one period of a workspace at ``now_ms``.

    :param limit: the limit recorded in its statement when its count has none (the policy's).
    :param plan: likewise the plan.
    :param events_max: the events stream's approximate cap.
    """

    workspace_id: str
    period: BillingPeriod
    now_ms: int
    limit: int
    plan: str
    events_max: int


@dataclass(frozen=True, slots=True)
class CloseReply:
    """A period closed: by this call (``closed_now``; its PERIOD_CLOSED event recorded) or
    before; when; and its statement (``None`` when it had no count)."""

    closed_now: bool
    closed_at_ms: int
    statement: Statement | None


class CloseStore(Protocol):
    """What closing periods and listing statements need."""

    async def scan_workspaces(self, cursor: int, count: int) -> tuple[int, list[str]]:
        """One ``SSCAN`` step over every workspace that ever decided: the cursor to go on
        from (0: done) and the workspaces found (a workspace may come twice)."""
        ...

    async def workspace_periods(self, workspace_ids: Sequence[str]) -> list[WorkspacePeriods]:
        """Each workspace's basis and counted and closed periods, in order, in one round trip
        (per node)."""
        ...

    async def close_periods(self, requests: Sequence[CloseRequest]) -> list[CloseReply]:
        """Close each period (those closed before answer their stored statement), in order,
        in one round trip (per node)."""
        ...

    async def period_closed_at(self, workspace_id: str, period_key: str) -> int:
        """When the period was closed (unix ms); 0 while it is open."""
        ...

    async def hold_lease(self, owner: str, lease_ms: int) -> bool:
        """Take the sweep's lease for ``owner`` when it is free, or extend it when it is
        already ``owner``'s; False when another holds it."""
        ...

    async def release_lease(self, owner: str) -> None:
        """Give the sweep's lease up, if it is still ``owner``'s."""
        ...

"""A small in-memory implementation of the storage ports, for the use cases' unit tests.

It keeps the rules the use cases rely on (a member set per period, the limit, the subscription
version check) and nothing of identity resolution; the Lua scripts' own behaviour is tested
against real Redis in ``tests/storage``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.decision import Merged, Reason
from sidecar.domain.errors import StaleSubscription, StorageError
from sidecar.domain.ports import (
    ContactOutcome,
    DecideReply,
    DecideRequest,
    ExemptReply,
    ExemptRequest,
    MergeRequest,
)


@dataclass
class MemoryStore:
    """Members per (workspace, period key); ``down`` makes every call fail as Redis would.

    :param bases: each workspace's subscription basis (default: UTC, no subscription).
    :param stale_every_time: answer every decision as if the subscription had just changed.
    """

    bases: dict[str, SubscriptionBasis] = field(default_factory=dict)
    members: dict[tuple[str, str], set[bytes]] = field(default_factory=dict)
    down: bool = False
    stale_every_time: bool = False
    decided: list[DecideRequest] = field(default_factory=list)
    merged: list[MergeRequest] = field(default_factory=list)
    basis_reads: int = 0

    def _check(self) -> None:
        if self.down:
            raise StorageError("redis: ConnectionError: connection refused", transient=True)

    async def decide(self, request: DecideRequest) -> DecideReply:
        self._check()
        self.decided.append(request)
        basis = self.bases.get(request.workspace_id, SubscriptionBasis())
        if self.stale_every_time:
            version = str(int(request.subscription_version or "0") + 1)
            basis = SubscriptionBasis(basis.timezone, basis.starts_at_ms, version)
            self.bases[request.workspace_id] = basis
        if basis.version != request.subscription_version:
            raise StaleSubscription(basis)
        counted = self.members.setdefault((request.workspace_id, request.period.key), set())
        limit = request.policy.limit
        active = len(counted)
        outcomes = []
        for contact in request.contacts:
            identity = contact.first
            if identity in counted:
                reason = Reason.ALREADY_ACTIVE
            elif active >= limit:
                reason = Reason.LIMIT_REACHED
            elif request.dry_run:
                reason = Reason.WITHIN_LIMIT
                active += 1
            else:
                reason = Reason.ADMITTED
                counted.add(identity)
                active += 1
            outcomes.append(ContactOutcome(reason, identity))
        # a dry run reports the usage as it stands, a decision the usage it leaves
        return DecideReply(len(counted), limit, request.policy.plan, 0, outcomes)

    async def period_basis(self, workspace_id: str) -> SubscriptionBasis:
        self._check()
        self.basis_reads += 1
        return self.bases.get(workspace_id, SubscriptionBasis())

    async def merge(self, request: MergeRequest) -> Merged:
        self._check()
        self.merged.append(request)
        counted = self.members.setdefault((request.workspace_id, request.period_key), set())
        survivor = request.target.first
        uncounted = 0
        for source in request.sources:
            if source.first in counted and source.first != survivor:
                counted.discard(source.first)
                if survivor in counted:
                    uncounted += 1
                else:
                    counted.add(survivor)
        return Merged(survivor, len(request.sources), uncounted, len(counted))

    async def set_exempt(self, request: ExemptRequest) -> ExemptReply:
        self._check()
        return ExemptReply(len(request.contacts), [c.first for c in request.contacts])

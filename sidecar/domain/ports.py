"""The storage contract of the use cases: protocols with named requests and replies.

Every operation takes a workspace id; storage builds its keys itself. Each call is one atomic
step in storage. Storage failures arrive as ``StorageError``, a subscription changed under a
decision as ``StaleSubscription``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from sidecar.domain.audit import AuditContext
from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Event, Merged, PeriodCount, Policy, Reason
from sidecar.domain.delivery import Attempt, NewEntries, StreamEntry, WorkspacePoll
from sidecar.domain.errors import StorageError
from sidecar.domain.period import BillingPeriod
from sidecar.domain.subscription import Resolved


# Not frozen: built for every call and every contact on the decision path, where a frozen
# dataclass costs about four times as much to construct. Treat them as values all the same.
@dataclass(slots=True)
class DecideRequest:
    """Contacts to decide in order, in one period of one workspace.

    :param period: the period computed from the subscription ``subscription_version``.
    :param now_ms: the decision's instant (unix ms).
    :param expire_at_ms: when the period's member set expires (unix ms).
    :param dry_run: decide only (Check, current usage); count and record nothing.
    :param day: the date of ``now_ms`` in the workspace's time zone (YYYY-MM-DD), under
        which admissions are counted by day.
    :param late: the period is not the current one (an event that occurred in the period
        before, within the lateness): the limit and plan recorded with its count apply.
    """

    workspace_id: str
    period: BillingPeriod
    now_ms: int
    expire_at_ms: int
    policy: Policy
    subscription_version: str
    contacts: Sequence[KeyedContact]
    dry_run: bool = False
    day: str = ""
    late: bool = False


@dataclass(slots=True)
class ContactOutcome:
    """What became of one contact of a ``DecideRequest``.

    :param identity: the key of the identity it is counted under.
    :param shadowed: over the limit but allowed, because the subscription is in shadow mode.
    :param conflict: its identifiers belonged to two identities.
    :param visitor_merged: a counted visitor turned out to be this contact (the count dropped).
    :param overage: admitted (or, in a dry run, would be) beyond the limit, under the
        subscription's overage allowance.
    """

    reason: Reason
    identity: bytes
    shadowed: bool = False
    conflict: bool = False
    visitor_merged: bool = False
    overage: bool = False


@dataclass(slots=True)
class DecideReply:
    """The workspace's usage after the decisions (before them for a dry run), and one outcome
    per contact in request order.

    :param trial_until_ms: the running trial's end (unix ms), 0 for none.
    :param channels: the channels whose count the decisions changed, with their new count.
    :param identity_version: how often the workspace's merges and exemptions changed who is
        who or who is exempt: what a process knows of its contacts holds while it stands.
    :param overage: the period's contacts admitted in overage (before the call for a dry run).
    """

    active: int
    limit: int
    plan: str
    trial_until_ms: int
    outcomes: list[ContactOutcome]
    channels: tuple[tuple[str, int], ...] = ()
    identity_version: int = 0
    overage: int = 0


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """Fold the sources' identities into the target's, in the current period; ``audit``
    says who does it (recorded in the same step)."""

    workspace_id: str
    period_key: str
    expire_at_ms: int
    target: KeyedContact
    sources: Sequence[KeyedContact]
    audit: AuditContext


@dataclass(frozen=True, slots=True)
class ExemptRequest:
    """Mark contacts exempt (``exempt``) or countable again; ``audit`` says who does it."""

    workspace_id: str
    contacts: Sequence[KeyedContact]
    exempt: bool
    audit: AuditContext


@dataclass(frozen=True, slots=True)
class ExemptReply:
    """How many stored marks changed, and the identity key of each contact in order."""

    changed: int
    identities: list[bytes]


@dataclass(frozen=True, slots=True)
class StoredSubscription:
    """A workspace's subscription as stored (``None`` when none was set), and the running or
    last trial's end (unix ms, 0 for none)."""

    resolved: Resolved | None
    trial_until_ms: int


@dataclass(frozen=True, slots=True)
class MemberPage:
    """One step of a scan over a period's counted keys: the cursor to continue from (0 when
    done), the keys found, and how many the period holds."""

    cursor: int
    keys: list[bytes]
    total: int


class DecisionStore(Protocol):
    """What enforcement needs."""

    async def decide(self, request: DecideRequest) -> DecideReply:
        """Resolve the contacts to identities and decide them in order; count the new ones
        unless ``dry_run``.

        :raise StaleSubscription: the subscription is no longer ``subscription_version``.
        """
        ...

    async def period_basis(self, workspace_id: str) -> SubscriptionBasis:
        """What the workspace's periods depend on now."""
        ...


class IdentityStore(Protocol):
    """What merges and exemptions need."""

    async def merge(self, request: MergeRequest) -> Merged: ...

    async def set_exempt(self, request: ExemptRequest) -> ExemptReply: ...


class OperatorStore(Protocol):
    """What the operators' calls need besides decisions."""

    async def set_subscription(
        self, resolved: Resolved, updated_at: datetime, expected_version: int, audit: AuditContext
    ) -> int | None:
        """Replace the workspace's subscription if its version is still ``expected_version``
        (0: it had none), and record the change (``audit``) in the same step; return the new
        version, or ``None`` when it had changed (nothing is recorded then)."""
        ...

    async def subscription(self, workspace_id: str) -> StoredSubscription: ...

    async def breakdown(self, workspace_id: str, period_key: str) -> dict[str, int]:
        """A period's breakdown: ``ch:<channel>`` -> contacts first counted on it,
        ``d:<YYYY-MM-DD>`` -> new contacts counted that day."""
        ...

    async def history(self, workspace_id: str) -> list[PeriodCount]:
        """Every period's count that is kept, in no particular order."""
        ...

    async def last_flood_ms(self, workspace_id: str) -> int:
        """When the workspace's flood guard last detected a flood (unix ms; 0 for never)."""
        ...

    async def scan_members(
        self, workspace_id: str, period_key: str, cursor: int, count: int
    ) -> MemberPage: ...


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """A new contact allowed while storage was unreachable: what replaying it needs.

    :param at_ms: the instant it was allowed (unix ms); it is counted in the period of that
        instant.
    :param contact: the keyed contact (never a raw email or phone number).
    """

    workspace_id: str
    at_ms: int
    contact: KeyedContact


@dataclass(frozen=True, slots=True)
class JournalSegment:
    """A sealed part of the journal, claimed by this process for replay: its name and its
    readable entries in the order they were written."""

    name: str
    entries: list[JournalEntry]


@dataclass(frozen=True, slots=True)
class ReplayedWorkspace:
    """What replaying one segment did to one workspace.

    :param replayed: entries decided again.
    :param counted: contacts the replay counted (the rest were already counted or exempt).
    :param overshoot: contacts the outage let in that the replay found over the limit: served,
        but not counted.
    :param closed: entries dropped uncounted because their period closed before the replay
        (``PeriodClosed``), and the names of those periods.
    """

    workspace_id: str
    replayed: int
    counted: int
    overshoot: int
    closed: int = 0
    closed_periods: tuple[str, ...] = ()


class AdmissionJournal(Protocol):
    """Where new contacts allowed during an outage wait, durably, until they are counted."""

    def has_room(self) -> bool:
        """Whether another entry fits under the journal's bound."""
        ...

    def append(self, entry: JournalEntry) -> asyncio.Future[bool]:
        """Queue ``entry`` (it takes its room at once); the future resolves true once it is
        on disk, false when it could not be written (full, or the disk failed): then the
        contact must not be allowed. Entries queued in one event-loop turn share one write
        and one fsync."""
        ...

    async def claim(self) -> list[JournalSegment]:
        """Seal what this process wrote so far and claim every segment no live process
        writes or replays, for replay."""
        ...

    async def settle(self, segment: JournalSegment, report: Sequence[ReplayedWorkspace]) -> None:
        """Every entry of ``segment`` was decided: remove it, and publish ``report``."""
        ...

    def release(self, segment: JournalSegment, error: BaseException) -> None:
        """The replay of ``segment`` failed (``error``): keep it for the next attempt."""
        ...


class EventStore(Protocol):
    """What watching events needs."""

    async def workspaces(self) -> list[str]:
        """Every workspace that may have events, sorted."""
        ...

    async def read_events(self, cursors: dict[str, str], block_ms: int, count: int) -> list[Event]:
        """Events after each workspace's cursor, waiting up to ``block_ms`` for one."""
        ...


@runtime_checkable
class RecordedEventReads(Protocol):
    """What a watch catching up from history needs beside ``EventStore``: a read that never
    waits. A store without it is read with ``read_events`` and the shortest wait."""

    async def read_recorded_events(self, cursors: dict[str, str], count: int) -> list[Event]:
        """Events after each workspace's cursor, at most ``count`` of each, oldest first per
        workspace, answered at once: none when every cursor is at its stream's end."""
        ...


class StorageProbe(Protocol):
    """What the health probe needs."""

    async def ping(self) -> None:
        """Raise ``StorageError`` unless storage answers on every connection and takes
        writes."""
        ...

    async def load_scripts(self) -> None:
        """Register every script, so that the first calls find them."""
        ...


class WebhookStore(Protocol):
    """What webhook delivery needs: one consumer of a group on each workspace's events, and
    a lease per workspace that says which consumer delivers it."""

    async def start_id(self) -> str:
        """The id a group created now starts after: just before webhooks were first on."""
        ...

    async def workspaces(self) -> list[str]:
        """Every workspace that may have events, sorted."""
        ...

    async def poll(
        self, workspaces: Sequence[str], *, start_id: str, lease_ms: int, take: bool
    ) -> list[WorkspacePoll]:
        """Look at each workspace (creating its group after ``start_id``); with ``take``,
        take the free lease of each that has something to deliver."""
        ...

    async def renew(self, workspace_id: str, lease_ms: int) -> bool:
        """Extend the lease; False when it is no longer this consumer's."""
        ...

    async def release(self, workspace_id: str) -> None:
        """Give up the lease, if it is still this consumer's."""
        ...

    async def claim(self, workspace_id: str) -> int:
        """Take over every pending entry of the workspace; how many had been trimmed."""
        ...

    async def pending(self, workspace_id: str, count: int) -> list[StreamEntry]:
        """This consumer's pending entries, oldest first."""
        ...

    async def read_new(self, workspace_id: str, count: int) -> NewEntries:
        """Up to ``count`` entries nobody read yet, oldest first."""
        ...

    async def ack(self, workspace_id: str, entry_id: str) -> None:
        """Mark the entry delivered."""
        ...

    async def close(self) -> None: ...


class WebhookReceiver(Protocol):
    """Where webhooks go."""

    async def post(self, body: bytes, headers: dict[str, str]) -> Attempt:
        """Send ``body`` with ``headers``; delivered on a 2xx only."""
        ...

    def close(self) -> None:
        """Stop taking requests."""
        ...


class DeliveryObserver(Protocol):
    """What webhook delivery reports as it goes (for metrics and logs)."""

    def delivered(self, event: Event, failed_attempts: int) -> None: ...

    def attempt_failed(self, event: Event, attempt: Attempt, failed_attempts: int) -> None: ...

    def skipped(self, workspace_id: str, count: int) -> None:
        """``count`` events were trimmed from the stream before they were delivered."""
        ...

    def oldest_undelivered(self, age_s: float) -> None:
        """The age of the oldest event not yet delivered, 0 for none, after each look."""
        ...

    def storage_lost(self, error: StorageError) -> None:
        """Looking for events failed, after the last look succeeded."""
        ...

    def storage_back(self) -> None:
        """Looking for events succeeded again."""
        ...

    def interrupted(self, workspace_id: str, error: StorageError) -> None:
        """A workspace's delivery stopped for a storage failure; the next session resumes."""
        ...

    def lease_lost(self, workspace_id: str) -> None: ...

    def failed(self, workspace_id: str, error: BaseException) -> None:
        """Something unexpected failed (for every workspace when ``workspace_id`` is "")."""
        ...

"""The enforcement use cases (Check, Activate, ActivateBatch) and the identity operations
(Merge, SetExempt), over any counting store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from sidecar.domain.clock import Clock
from sidecar.domain.contact import (
    ContactKeyer,
    Kind,
    identifiers,
    key_text,
    validate_workspace_id,
)
from sidecar.domain.decision import BatchResult, Counted, Decision, Merged, Policy, Reason, Usage
from sidecar.domain.errors import InvalidArgument, StaleSubscription, StorageError
from sidecar.domain.period import BillingPeriod, months_after, period_at
from sidecar.storage.keys import WorkspaceKeys

# A contact as the scripts take it: primary identifier keys in precedence order, visitor key.
KeyedContact = tuple[list[bytes], bytes]
_CACHE_MAX = 100_000


class ContactFields(NamedTuple):
    """A contact as a request carries it, before validation; empty strings are "not given"."""

    id: str = ""
    email: str = ""
    phone: str = ""
    channel: str = ""
    visitor_id: str = ""


class CountingStore(Protocol):
    """The storage operations enforcement needs (implemented by ``RedisStore``)."""

    async def decide(
        self,
        keys: WorkspaceKeys,
        period_key: str,
        period_name: str,
        now_ms: int,
        expire_at_ms: int,
        policy: Policy,
        contacts: Sequence[tuple[Sequence[bytes], bytes]],
        *,
        subscription_version: str = "",
        dry_run: bool = False,
    ) -> Counted: ...

    async def merge(
        self,
        keys: WorkspaceKeys,
        period_key: str,
        expire_at_ms: int,
        target: tuple[Sequence[bytes], bytes],
        sources: Sequence[tuple[Sequence[bytes], bytes]],
    ) -> Merged: ...

    async def set_exempt(
        self, keys: WorkspaceKeys, contacts: Sequence[tuple[Sequence[bytes], bytes]], exempt: bool
    ) -> tuple[int, list[bytes]]: ...


class _PeriodBasis(NamedTuple):
    """What a workspace's period depends on, as last seen: time zone, start, version."""

    timezone: str = "UTC"
    starts_at_ms: int = 0
    version: str = ""


class Enforcer:
    """Decides whether contacts may be served, and counts them once per period.

    Each workspace's period follows its subscription's time zone and start. The sidecar
    remembers them per workspace and the decision script checks the subscription's version,
    so a changed subscription costs one retry and never a wrong period.

    :param store: where counts live; each call is one atomic step there.
    :param keyer: turns identifiers into counting keys.
    :param clock: the injected time source.
    :param policy: what applies without a subscription, and which notifications to record.
    :param retention_periods: past periods whose member sets stay listable.
    :param batch_max: the most contacts one batch may carry.
    :param failure_mode: ``error`` raises ``StorageError`` when the store is unreachable;
        ``allow`` and ``deny`` answer a ``BACKEND_UNAVAILABLE`` decision instead.
    """

    def __init__(
        self,
        store: CountingStore,
        keyer: ContactKeyer,
        clock: Clock,
        policy: Policy,
        *,
        retention_periods: int = 2,
        batch_max: int = 10_000,
        failure_mode: str = "error",
    ) -> None:
        self._store = store
        self._keyer = keyer
        self._clock = clock
        self._policy = policy
        self._retention = retention_periods
        self._batch_max = batch_max
        self._failure_mode = failure_mode
        self._bases: dict[str, _PeriodBasis] = {}
        self._periods: dict[tuple[str, int], tuple[BillingPeriod, int]] = {}

    def period_of(self, workspace_id: str, now: datetime) -> tuple[BillingPeriod, int, str]:
        """The workspace's period at ``now`` as last seen, its expiry (ms), and the version."""
        basis = self._bases.get(workspace_id) or _PeriodBasis()
        found = self._periods.get((basis.timezone, basis.starts_at_ms))
        if found is None or not found[0].contains(now):
            zone = ZoneInfo(basis.timezone)
            starts = (
                datetime.fromtimestamp(basis.starts_at_ms / 1000, UTC)
                if basis.starts_at_ms
                else None
            )
            period = period_at(now, zone, starts)
            expire = int(months_after(period, self._retention, zone).timestamp() * 1000)
            if len(self._periods) > _CACHE_MAX:
                self._periods.clear()
            found = self._periods[(basis.timezone, basis.starts_at_ms)] = (period, expire)
        return found[0], found[1], basis.version

    def zone_of(self, workspace_id: str) -> ZoneInfo:
        """The workspace's time zone, as last seen."""
        return ZoneInfo((self._bases.get(workspace_id) or _PeriodBasis()).timezone)

    def _learn(self, workspace_id: str, stale: StaleSubscription) -> None:
        if len(self._bases) > _CACHE_MAX:
            self._bases.clear()
        self._bases[workspace_id] = _PeriodBasis(stale.timezone, stale.starts_at_ms, stale.version)

    def keyed(self, contact: ContactFields, field: str) -> KeyedContact:
        """Validate a contact and key its identifiers: primary keys, visitor key (or b"")."""
        primaries: list[bytes] = []
        visitor = b""
        for identifier in identifiers(*contact, field=field):
            if identifier.kind is Kind.VISITOR:
                visitor = self._keyer.key(identifier)
            else:
                primaries.append(self._keyer.key(identifier))
        return primaries, visitor

    def _unavailable(self, exc: StorageError, contact: KeyedContact) -> Decision:
        if self._failure_mode == "error":
            raise exc
        return Decision(
            allowed=self._failure_mode == "allow",
            reason=Reason.BACKEND_UNAVAILABLE,
            contact_key=key_text(contact[0][0] if contact[0] else contact[1]),
            usage=None,
        )

    async def _decide(
        self, workspace_id: str, contacts: Sequence[KeyedContact], dry_run: bool
    ) -> tuple[Counted, Usage]:
        now = self._clock.now()
        for _ in range(3):
            period, expire_at_ms, version = self.period_of(workspace_id, now)
            try:
                counted = await self._store.decide(
                    WorkspaceKeys(workspace_id),
                    period.key,
                    period.name,
                    int(now.timestamp() * 1000),
                    expire_at_ms,
                    self._policy,
                    contacts,
                    subscription_version=version,
                    dry_run=dry_run,
                )
            except StaleSubscription as stale:
                self._learn(workspace_id, stale)
                continue
            trial_end = (
                datetime.fromtimestamp(counted.trial_until_ms / 1000, UTC)
                if counted.trial_until_ms
                else None
            )
            usage = Usage(period, counted.active, counted.limit, counted.plan, trial_end)
            return counted, usage
        raise StorageError("the subscription changed during the decision", transient=True)

    @staticmethod
    def _decisions(counted: Counted, usage: Usage | None) -> list[Decision]:
        n = len(counted.reasons)
        shadowed = counted.shadowed or [False] * n
        conflicts = counted.conflicts or [False] * n
        merged = counted.visitors_merged or [False] * n
        identities = counted.identities or [b""] * n
        return [
            Decision(
                allowed=reason is not Reason.LIMIT_REACHED or shadowed[i],
                reason=reason,
                contact_key=key_text(identities[i]),
                usage=usage,
                identity_conflict=conflicts[i],
                shadow_denied=shadowed[i],
                visitor_merged=merged[i],
            )
            for i, reason in enumerate(counted.reasons)
        ]

    async def check(self, workspace_id: str, contact: ContactFields) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        return await self._one(workspace_id, contact, dry_run=True)

    async def activate(self, workspace_id: str, contact: ContactFields) -> Decision:
        """Admit and count a new contact while below the limit; always allow an active one."""
        return await self._one(workspace_id, contact, dry_run=False)

    async def _one(self, workspace_id: str, contact: ContactFields, dry_run: bool) -> Decision:
        validate_workspace_id(workspace_id)
        keyed = self.keyed(contact, "contact")
        try:
            counted, usage = await self._decide(workspace_id, (keyed,), dry_run)
        except StorageError as exc:
            return self._unavailable(exc, keyed)
        return self._decisions(counted, usage)[0]

    async def activate_batch(
        self, workspace_id: str, contacts: Sequence[ContactFields]
    ) -> BatchResult:
        """Decide ``contacts`` in order, in one atomic step.

        :raise InvalidArgument: for an empty or oversized batch, or any invalid contact (then
            nothing is counted).
        """
        validate_workspace_id(workspace_id)
        if not contacts:
            raise InvalidArgument("contacts", "must hold at least one contact")
        if len(contacts) > self._batch_max:
            raise InvalidArgument(
                "contacts", f"holds {len(contacts)} contacts; at most {self._batch_max} allowed"
            )
        keyed = [self.keyed(c, f"contacts[{i}]") for i, c in enumerate(contacts)]
        try:
            counted, usage = await self._decide(workspace_id, keyed, dry_run=False)
        except StorageError as exc:
            return BatchResult([self._unavailable(exc, k) for k in keyed], None)
        return BatchResult(self._decisions(counted, None), usage)

    async def usage(self, workspace_id: str) -> Usage:
        """The workspace's usage in the current period."""
        validate_workspace_id(workspace_id)
        _, usage = await self._decide(workspace_id, (), dry_run=True)
        return usage

    async def merge(
        self, workspace_id: str, sources: Sequence[ContactFields], target: ContactFields
    ) -> tuple[Merged, Usage]:
        """Fold the sources' identities into the target's; the current period's count drops
        by the folded identities that were counted beside the survivor. Idempotent.
        """
        validate_workspace_id(workspace_id)
        if not sources:
            raise InvalidArgument("sources", "must hold at least one contact")
        if len(sources) > self._batch_max:
            raise InvalidArgument("sources", f"at most {self._batch_max} contacts")
        keyed_target = self.keyed(target, "target")
        keyed_sources = [self.keyed(c, f"sources[{i}]") for i, c in enumerate(sources)]
        await self.usage(workspace_id)  # makes sure the period follows the subscription
        period, expire_at_ms, _ = self.period_of(workspace_id, self._clock.now())
        merged = await self._store.merge(
            WorkspaceKeys(workspace_id), period.key, expire_at_ms, keyed_target, keyed_sources
        )
        return merged, await self.usage(workspace_id)

    async def set_exempt(
        self, workspace_id: str, contacts: Sequence[ContactFields], exempt: bool
    ) -> list[str]:
        """Exempt contacts (allowed, never counted) or make them countable again; return
        their identity keys."""
        validate_workspace_id(workspace_id)
        if not contacts:
            raise InvalidArgument("contacts", "must hold at least one contact")
        if len(contacts) > self._batch_max:
            raise InvalidArgument("contacts", f"at most {self._batch_max} contacts")
        keyed = [self.keyed(c, f"contacts[{i}]") for i, c in enumerate(contacts)]
        _, identities = await self._store.set_exempt(WorkspaceKeys(workspace_id), keyed, exempt)
        return [key_text(k) for k in identities]

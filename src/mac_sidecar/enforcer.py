"""The enforcement use cases, Check, Activate and ActivateBatch, over any counting store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

from mac_sidecar.clock import Clock
from mac_sidecar.contact import ContactKeyer, identifiers, key_text, validate_workspace_id
from mac_sidecar.decision import BatchResult, Counted, Decision, Policy, Reason, Usage
from mac_sidecar.errors import InvalidArgument, StorageError
from mac_sidecar.keys import WorkspaceKeys
from mac_sidecar.period import BillingPeriod, months_after, period_at


class ContactFields(NamedTuple):
    """A contact as a request carries it, before validation; empty strings are "not given"."""

    id: str = ""
    email: str = ""
    phone: str = ""
    channel: str = ""
    visitor_id: str = ""


class CountingStore(Protocol):
    """The storage operation enforcement needs (implemented by ``RedisStore``)."""

    async def decide(
        self,
        keys: WorkspaceKeys,
        period_key: str,
        period_name: str,
        now_ms: int,
        expire_at_ms: int,
        policy: Policy,
        contacts: Sequence[bytes],
        *,
        dry_run: bool = False,
    ) -> Counted: ...


class Enforcer:
    """Decides whether contacts may be served, and counts them once per period.

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
        self._period: BillingPeriod | None = None
        self._expire_at_ms = 0

    def _current_period(self, now: datetime) -> BillingPeriod:
        period = self._period
        if period is None or not period.contains(now):
            period = period_at(now, UTC)
            self._expire_at_ms = int(months_after(period, self._retention).timestamp() * 1000)
            self._period = period
        return period

    def _contact_key(self, contact: ContactFields, field: str) -> bytes:
        found = identifiers(*contact, field=field)
        return self._keyer.key(found[0])

    def _unavailable(self, exc: StorageError, contact_key: str) -> Decision:
        if self._failure_mode == "error":
            raise exc
        return Decision(
            allowed=self._failure_mode == "allow",
            reason=Reason.BACKEND_UNAVAILABLE,
            contact_key=contact_key,
            usage=None,
        )

    async def _decide(
        self, workspace_id: str, contacts: Sequence[bytes], dry_run: bool
    ) -> tuple[Counted, Usage]:
        now = self._clock.now()
        period = self._current_period(now)
        counted = await self._store.decide(
            WorkspaceKeys(workspace_id),
            period.key,
            period.name,
            int(now.timestamp() * 1000),
            self._expire_at_ms,
            self._policy,
            contacts,
            dry_run=dry_run,
        )
        trial_end = (
            datetime.fromtimestamp(counted.trial_until_ms / 1000, UTC)
            if counted.trial_until_ms
            else None
        )
        return counted, Usage(period, counted.active, counted.limit, counted.plan, trial_end)

    @staticmethod
    def _decisions(counted: Counted, keys: Sequence[bytes], usage: Usage | None) -> list[Decision]:
        shadowed = counted.shadowed or [False] * len(keys)
        return [
            Decision(
                allowed=reason is not Reason.LIMIT_REACHED or shadow,
                reason=reason,
                contact_key=key_text(key),
                usage=usage,
                shadow_denied=shadow,
            )
            for key, reason, shadow in zip(keys, counted.reasons, shadowed, strict=True)
        ]

    async def check(self, workspace_id: str, contact: ContactFields) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        return await self._one(workspace_id, contact, dry_run=True)

    async def activate(self, workspace_id: str, contact: ContactFields) -> Decision:
        """Admit and count a new contact while below the limit; always allow an active one."""
        return await self._one(workspace_id, contact, dry_run=False)

    async def _one(self, workspace_id: str, contact: ContactFields, dry_run: bool) -> Decision:
        validate_workspace_id(workspace_id)
        key = self._contact_key(contact, "contact")
        try:
            counted, usage = await self._decide(workspace_id, (key,), dry_run)
        except StorageError as exc:
            return self._unavailable(exc, key_text(key))
        return self._decisions(counted, (key,), usage)[0]

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
        keyed = [self._contact_key(c, f"contacts[{i}]") for i, c in enumerate(contacts)]
        try:
            counted, usage = await self._decide(workspace_id, keyed, dry_run=False)
        except StorageError as exc:
            return BatchResult([self._unavailable(exc, key_text(k)) for k in keyed], None)
        return BatchResult(self._decisions(counted, keyed, None), usage)

    async def usage(self, workspace_id: str) -> Usage:
        """The workspace's usage in the current period."""
        validate_workspace_id(workspace_id)
        _, usage = await self._decide(workspace_id, (), dry_run=True)
        return usage

"""The enforcement use cases, Check, Activate and ActivateBatch, over any counting store."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import NamedTuple, Protocol

from mac_sidecar.clock import Clock
from mac_sidecar.contact import ContactKeyer, identifiers, key_text, validate_workspace_id
from mac_sidecar.decision import BatchResult, Counted, Decision, Reason, Usage
from mac_sidecar.errors import InvalidArgument, StorageError
from mac_sidecar.keys import WorkspaceKeys
from mac_sidecar.period import BillingPeriod, months_after, period_at

DEFAULT_PLAN = "default"


class ContactFields(NamedTuple):
    """A contact as a request carries it, before validation; empty strings are "not given"."""

    id: str = ""
    email: str = ""
    phone: str = ""
    channel: str = ""
    visitor_id: str = ""


class CountingStore(Protocol):
    """The storage operations enforcement needs (implemented by ``RedisStore``)."""

    async def activate(
        self,
        keys: WorkspaceKeys,
        period_key: str,
        limit: int,
        expire_at_ms: int,
        contacts: Sequence[bytes],
    ) -> Counted: ...

    async def check(
        self, keys: WorkspaceKeys, period_key: str, limit: int, contact: bytes
    ) -> Counted: ...


class Enforcer:
    """Decides whether contacts may be served, and counts them once per period.

    :param store: where counts live; each call is one atomic step there.
    :param keyer: turns identifiers into counting keys.
    :param clock: the injected time source.
    :param default_limit: the limit of a workspace without a subscription.
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
        *,
        default_limit: int = 100,
        retention_periods: int = 2,
        batch_max: int = 10_000,
        failure_mode: str = "error",
    ) -> None:
        self._store = store
        self._keyer = keyer
        self._clock = clock
        self._default_limit = default_limit
        self._retention = retention_periods
        self._batch_max = batch_max
        self._failure_mode = failure_mode
        self._period: BillingPeriod | None = None
        self._expire_at_ms = 0

    def _current_period(self) -> BillingPeriod:
        now = self._clock.now()
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

    async def check(self, workspace_id: str, contact: ContactFields) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        keys = WorkspaceKeys(validate_workspace_id(workspace_id))
        key = self._contact_key(contact, "contact")
        period = self._current_period()
        try:
            reply = await self._store.check(keys, period.key, self._default_limit, key)
        except StorageError as exc:
            return self._unavailable(exc, key_text(key))
        reason = reply.reasons[0]
        return Decision(
            allowed=reason is not Reason.LIMIT_REACHED,
            reason=reason,
            contact_key=key_text(key),
            usage=Usage(period, reply.active, reply.limit, DEFAULT_PLAN),
        )

    async def activate(self, workspace_id: str, contact: ContactFields) -> Decision:
        """Admit and count a new contact while below the limit; always allow an active one."""
        keys = WorkspaceKeys(validate_workspace_id(workspace_id))
        key = self._contact_key(contact, "contact")
        period = self._current_period()
        try:
            reply = await self._store.activate(
                keys, period.key, self._default_limit, self._expire_at_ms, (key,)
            )
        except StorageError as exc:
            return self._unavailable(exc, key_text(key))
        reason = reply.reasons[0]
        return Decision(
            allowed=reason is not Reason.LIMIT_REACHED,
            reason=reason,
            contact_key=key_text(key),
            usage=Usage(period, reply.active, reply.limit, DEFAULT_PLAN),
        )

    async def activate_batch(
        self, workspace_id: str, contacts: Sequence[ContactFields]
    ) -> BatchResult:
        """Decide ``contacts`` in order, in one atomic step.

        :raise InvalidArgument: for an empty or oversized batch, or any invalid contact (then
            nothing is counted).
        """
        keys = WorkspaceKeys(validate_workspace_id(workspace_id))
        if not contacts:
            raise InvalidArgument("contacts", "must hold at least one contact")
        if len(contacts) > self._batch_max:
            raise InvalidArgument(
                "contacts", f"holds {len(contacts)} contacts; at most {self._batch_max} allowed"
            )
        keyed = [self._contact_key(c, f"contacts[{i}]") for i, c in enumerate(contacts)]
        period = self._current_period()
        try:
            reply = await self._store.activate(
                keys, period.key, self._default_limit, self._expire_at_ms, keyed
            )
        except StorageError as exc:
            return BatchResult([self._unavailable(exc, key_text(k)) for k in keyed], None)
        decisions = [
            Decision(reason is not Reason.LIMIT_REACHED, reason, key_text(k), None)
            for k, reason in zip(keyed, reply.reasons, strict=True)
        ]
        return BatchResult(decisions, Usage(period, reply.active, reply.limit, DEFAULT_PLAN))

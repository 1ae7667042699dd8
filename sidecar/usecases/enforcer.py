"""The enforcement use cases: Check, Activate and ActivateBatch, and what they answer when
storage is unreachable."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from sidecar.domain.addresses import is_national
from sidecar.domain.clock import Clock, from_ms, to_ms
from sidecar.domain.contact import ContactFields, KeyedContact, key_text, validate_workspace_id
from sidecar.domain.decision import DENYING, BatchResult, Decision, Policy, Usage
from sidecar.domain.errors import InvalidArgument, StorageError
from sidecar.domain.period import BillingPeriod
from sidecar.domain.ports import DecideReply, DecisionStore
from sidecar.usecases.coalesce import Coalescer
from sidecar.usecases.contacts import ContactReader, has_national_phone
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.outage import OutageAnswers
from sidecar.usecases.periods import PeriodDecisions, Periods
from sidecar.usecases.warm import WarmPath

# the earliest occurred_at: no period before it takes events
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Enforcer:
    """Decides whether contacts may be served, and counts them once per period.

    A caller asks the warm path (``WarmPath.answer``) first; what it leaves is decided here.

    :param store: where counts live; each call is one atomic step there.
    :param contacts: validates and keys the contacts of requests.
    :param periods: each workspace's current period.
    :param clock: the injected time source.
    :param policy: what applies without a subscription, and which notifications to record.
    :param known: the record of contacts counted this period, filled by every decision.
    :param outage: what is answered while the store is unreachable (``known`` answers for
        the contacts it holds).
    :param warm: the warm path, taught every reply of the store; it answers a national
        number only once this process knows the workspace's region.
    :param lateness_seconds: how long after its end a period still takes an event that
        occurred in it (``MAC_LATENESS_SECONDS``).
    :param clock_skew_seconds: how far ahead of ``clock`` an event's time may be
        (``MAC_CLOCK_SKEW_SECONDS``).
    :param after_decision: told of every decision that reached the store (the workspace,
        its period then, the clock's now): ``PeriodClosing.note_decision``, which closes the
        period before once it is due. It must not wait.
    """

    def __init__(
        self,
        store: DecisionStore,
        contacts: ContactReader,
        periods: Periods,
        clock: Clock,
        policy: Policy,
        *,
        known: KnownContacts,
        outage: OutageAnswers,
        warm: WarmPath,
        lateness_seconds: float = 300.0,
        clock_skew_seconds: float = 60.0,
        after_decision: Callable[[str, BillingPeriod, datetime], None] | None = None,
    ) -> None:
        self._contacts = contacts
        self._periods = periods
        self._clock = clock
        self._known = known
        self._outage = outage
        self._warm = warm
        self._skew = timedelta(seconds=clock_skew_seconds)
        self._after_decision = after_decision
        self._decisions = PeriodDecisions(
            Coalescer(store).decide, periods, policy, timedelta(seconds=lateness_seconds)
        )

    async def check(
        self, workspace_id: str, contact: ContactFields, occurred_at: datetime | None = None
    ) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        return await self._one(workspace_id, contact, True, occurred_at)

    async def activate(
        self, workspace_id: str, contact: ContactFields, occurred_at: datetime | None = None
    ) -> Decision:
        """Admit and count a new contact while below the limit; always allow an active one.

        :param occurred_at: when the contact happened (``None``: now): it is decided and
            counted in the period of that instant, at that period's terms (``event_period``).
        :raise InvalidArgument: ``occurred_at`` ahead of the clock by more than the skew, or
            before 1970.
        :raise PeriodClosed: ``occurred_at`` falls in a closed period; nothing is written.
        """
        return await self._one(workspace_id, contact, False, occurred_at)

    async def activate_batch(
        self,
        workspace_id: str,
        contacts: Sequence[ContactFields],
        occurred_at: datetime | None = None,
    ) -> BatchResult:
        """Decide ``contacts`` in order, in one atomic step (all at ``occurred_at``, as
        ``activate`` takes it).

        :raise InvalidArgument: for an empty or oversized batch, or any invalid contact (then
            nothing is counted).
        """
        return await self._batch(workspace_id, contacts, False, occurred_at)

    async def check_batch(
        self,
        workspace_id: str,
        contacts: Sequence[ContactFields],
        occurred_at: datetime | None = None,
    ) -> BatchResult:
        """What ``activate_batch`` would answer for ``contacts`` now; changes nothing."""
        return await self._batch(workspace_id, contacts, True, occurred_at)

    def _check_event(self, workspace_id: str, occurred_at: datetime) -> None:
        """Refuse an event's time before anything is keyed, read or journaled.

        :raise InvalidArgument: ahead of the clock by more than the skew, or before 1970.
        :raise PeriodClosed: in a closed period (as this process knows the workspace's zone).
        """
        now = self._clock.now()
        if occurred_at - now > self._skew:
            ahead = math.ceil((occurred_at - now).total_seconds())
            raise InvalidArgument(
                "occurred_at",
                f"is {ahead} s in the future; at most {self._skew.seconds} s is taken "
                "(MAC_CLOCK_SKEW_SECONDS)",
            )
        if occurred_at < _EPOCH:
            raise InvalidArgument(
                "occurred_at", "is before 1970-01-01T00:00:00Z: no period that early takes events"
            )
        self._decisions.event_period(workspace_id, occurred_at, now)

    async def _batch(
        self,
        workspace_id: str,
        contacts: Sequence[ContactFields],
        dry_run: bool,
        occurred_at: datetime | None = None,
    ) -> BatchResult:
        validate_workspace_id(workspace_id)
        self._contacts.check_count(contacts, "contacts")
        if occurred_at is not None:
            self._check_event(workspace_id, occurred_at)

        def key(region: str) -> list[KeyedContact]:
            return self._contacts.many(contacts, "contacts", region)

        national = has_national_phone(contacts)
        region = self._periods.basis(workspace_id).default_region
        try:
            keyed = await self._key(workspace_id, key, national, region)
        except StorageError as exc:
            unkeyed: list[KeyedContact | None] = [None] * len(contacts)
            answers = await self._outage.many(exc, workspace_id, unkeyed, dry_run, occurred_at)
            return BatchResult(answers, None)
        try:
            reply, usage = await self._decide(
                workspace_id, keyed, key if national else None, dry_run, occurred_at
            )
        except StorageError as exc:
            answers = await self._outage.many(exc, workspace_id, keyed, dry_run, occurred_at)
            return BatchResult(answers, None)
        self._remember(workspace_id, usage.period.key, keyed, reply, dry_run)
        return BatchResult(_decisions(reply, None), usage)

    async def usage(self, workspace_id: str) -> Usage:
        """The workspace's usage in the current period."""
        validate_workspace_id(workspace_id)
        _, usage = await self._decide(workspace_id, [], None, dry_run=True)
        return usage

    async def _one(
        self,
        workspace_id: str,
        contact: ContactFields,
        dry_run: bool,
        occurred_at: datetime | None = None,
    ) -> Decision:
        validate_workspace_id(workspace_id)
        if occurred_at is not None:
            self._check_event(workspace_id, occurred_at)
        rekey: Callable[[str], list[KeyedContact]] | None = None
        if contact.phone and is_national(contact.phone):
            region = self._periods.basis(workspace_id).default_region

            def key(region: str) -> list[KeyedContact]:
                return [self._contacts.one(contact, "contact", region)]

            rekey = key
            try:
                keyed = await self._key(workspace_id, key, True, region)
            except StorageError as exc:
                return await self._outage.one(exc, workspace_id, None, dry_run, occurred_at)
            if self._periods.basis(workspace_id).default_region != region:
                # keyed in a region read just now: the warm path could not key it before
                warm = self._warm.answer(workspace_id, contact, occurred_at)
                if warm is not None:
                    return warm
        else:
            # the default region reads national numbers only: keyed without it, as the warm
            # path keys it
            keyed = [self._contacts.one(contact, "contact", "")]
        try:
            reply, usage = await self._decide(workspace_id, keyed, rekey, dry_run, occurred_at)
        except StorageError as exc:
            return await self._outage.one(exc, workspace_id, keyed[0], dry_run, occurred_at)
        self._remember(workspace_id, usage.period.key, keyed, reply, dry_run)
        return _decisions(reply, usage)[0]

    def forget(self, workspace_id: str) -> None:
        """Answer the workspace's next decisions from the store: this process changed its
        subscription, a merge or an exemption (``WarmPath.forget``)."""
        self._warm.forget(workspace_id)

    def _remember(
        self,
        workspace_id: str,
        period_key: str,
        contacts: list[KeyedContact],
        reply: DecideReply,
        dry_run: bool,
    ) -> None:
        """Keep the contacts the decision settled in the record of known contacts."""
        known = self._known
        if known.capacity:
            for contact, outcome in zip(contacts, reply.outcomes, strict=True):
                known.remember_outcome(workspace_id, period_key, contact, outcome, dry_run)

    async def _key(
        self,
        workspace_id: str,
        key: Callable[[str], list[KeyedContact]],
        national: bool,
        region: str,
    ) -> list[KeyedContact]:
        """Key contacts under the workspace's default phone region as this process knows it
        (``region``). A national number reads the region first when this process knows none
        for the workspace (it may have been set since); a region that changed later is caught
        by the decision script's version check."""
        if national and not region:
            await self._periods.refresh(workspace_id)
            return key(self._periods.basis(workspace_id).default_region)
        try:
            return key(region)
        except InvalidArgument as exc:
            if not national or not exc.field.endswith(".phone"):
                raise
            # a number impossible in the region last seen may be fine in a new one
            await self._periods.refresh(workspace_id)
            if self._periods.basis(workspace_id).default_region == region:
                raise
            return key(self._periods.basis(workspace_id).default_region)

    async def _decide(
        self,
        workspace_id: str,
        contacts: list[KeyedContact],
        rekey: Callable[[str], list[KeyedContact]] | None,
        dry_run: bool,
        occurred_at: datetime | None = None,
    ) -> tuple[DecideReply, Usage]:
        """One decision in the workspace's current period, or in the period of
        ``occurred_at``, at that instant (``PeriodDecisions.decide``); the warm path learns
        a reply of the current period."""
        if self._periods.unsubscribed(workspace_id):  # no coroutine per decision otherwise
            await self._periods.ensure_subscribed(workspace_id)
        now = self._clock.now()
        if occurred_at is None:
            reply, current = await self._decisions.decide(
                workspace_id, contacts, now, to_ms(now), dry_run=dry_run, rekey=rekey
            )
        else:
            reply, current = await self._decisions.decide(
                workspace_id,
                contacts,
                occurred_at,
                to_ms(occurred_at),
                dry_run=dry_run,
                rekey=rekey,
                now=now,
            )
        trial_end = from_ms(reply.trial_until_ms) if reply.trial_until_ms else None
        usage = Usage(
            current.period,
            reply.active,
            reply.limit,
            reply.plan,
            trial_end,
            reply.channels,
            reply.overage,
        )
        if occurred_at is None or current.period.contains(now):
            self._warm.learn(workspace_id, now, usage, reply.identity_version)
            if self._after_decision is not None:
                self._after_decision(workspace_id, current.period, now)
        return reply, usage


def _decisions(reply: DecideReply, usage: Usage | None) -> list[Decision]:
    return [
        Decision(
            allowed=outcome.reason not in DENYING or outcome.shadowed,
            reason=outcome.reason,
            contact_key=key_text(outcome.identity),
            usage=usage,
            identity_conflict=outcome.conflict,
            shadow_denied=outcome.shadowed,
            visitor_merged=outcome.visitor_merged,
            overage=outcome.overage,
        )
        for outcome in reply.outcomes
    ]

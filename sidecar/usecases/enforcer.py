"""The enforcement use cases: Check, Activate and ActivateBatch, and what they answer when
storage is unreachable."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sidecar.domain.addresses import is_national
from sidecar.domain.clock import Clock, from_ms, to_ms
from sidecar.domain.contact import ContactFields, KeyedContact, key_text, validate_workspace_id
from sidecar.domain.decision import BatchResult, Decision, Policy, Reason, Usage
from sidecar.domain.errors import InvalidArgument, StorageError
from sidecar.domain.ports import DecideReply, DecisionStore
from sidecar.usecases.coalesce import Coalescer
from sidecar.usecases.contacts import ContactReader, has_national_phone
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.outage import OutageAnswers
from sidecar.usecases.periods import PeriodDecisions, Periods
from sidecar.usecases.warm import WarmPath


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
    ) -> None:
        self._contacts = contacts
        self._periods = periods
        self._clock = clock
        self._known = known
        self._outage = outage
        self._warm = warm
        self._decisions = PeriodDecisions(Coalescer(store).decide, periods, policy)

    async def check(self, workspace_id: str, contact: ContactFields) -> Decision:
        """What ``activate`` would answer; changes nothing."""
        return await self._one(workspace_id, contact, True)

    async def activate(self, workspace_id: str, contact: ContactFields) -> Decision:
        """Admit and count a new contact while below the limit; always allow an active one."""
        return await self._one(workspace_id, contact, False)

    async def activate_batch(
        self, workspace_id: str, contacts: Sequence[ContactFields]
    ) -> BatchResult:
        """Decide ``contacts`` in order, in one atomic step.

        :raise InvalidArgument: for an empty or oversized batch, or any invalid contact (then
            nothing is counted).
        """
        return await self._batch(workspace_id, contacts, dry_run=False)

    async def check_batch(
        self, workspace_id: str, contacts: Sequence[ContactFields]
    ) -> BatchResult:
        """What ``activate_batch`` would answer for ``contacts`` now; changes nothing."""
        return await self._batch(workspace_id, contacts, dry_run=True)

    async def _batch(
        self, workspace_id: str, contacts: Sequence[ContactFields], dry_run: bool
    ) -> BatchResult:
        validate_workspace_id(workspace_id)
        self._contacts.check_count(contacts, "contacts")

        def key(region: str) -> list[KeyedContact]:
            return self._contacts.many(contacts, "contacts", region)

        national = has_national_phone(contacts)
        region = self._periods.basis(workspace_id).default_region
        try:
            keyed = await self._key(workspace_id, key, national, region)
        except StorageError as exc:
            unkeyed: list[KeyedContact | None] = [None] * len(contacts)
            return BatchResult(await self._outage.many(exc, workspace_id, unkeyed, dry_run), None)
        try:
            reply, usage = await self._decide(
                workspace_id, keyed, key if national else None, dry_run
            )
        except StorageError as exc:
            return BatchResult(await self._outage.many(exc, workspace_id, keyed, dry_run), None)
        self._remember(workspace_id, usage.period.key, keyed, reply, dry_run)
        return BatchResult(_decisions(reply, None), usage)

    async def usage(self, workspace_id: str) -> Usage:
        """The workspace's usage in the current period."""
        validate_workspace_id(workspace_id)
        _, usage = await self._decide(workspace_id, [], None, dry_run=True)
        return usage

    async def _one(self, workspace_id: str, contact: ContactFields, dry_run: bool) -> Decision:
        validate_workspace_id(workspace_id)
        rekey: Callable[[str], list[KeyedContact]] | None = None
        if contact.phone and is_national(contact.phone):
            region = self._periods.basis(workspace_id).default_region

            def key(region: str) -> list[KeyedContact]:
                return [self._contacts.one(contact, "contact", region)]

            rekey = key
            try:
                keyed = await self._key(workspace_id, key, True, region)
            except StorageError as exc:
                return await self._outage.one(exc, workspace_id, None, dry_run)
            if self._periods.basis(workspace_id).default_region != region:
                # keyed in a region read just now: the warm path could not key it before
                warm = self._warm.answer(workspace_id, contact)
                if warm is not None:
                    return warm
        else:
            # the default region reads national numbers only: keyed without it, as the warm
            # path keys it
            keyed = [self._contacts.one(contact, "contact", "")]
        try:
            reply, usage = await self._decide(workspace_id, keyed, rekey, dry_run)
        except StorageError as exc:
            return await self._outage.one(exc, workspace_id, keyed[0], dry_run)
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
    ) -> tuple[DecideReply, Usage]:
        """One decision in the workspace's current period (``PeriodDecisions.decide``); the
        warm path learns its reply."""
        if self._periods.unsubscribed(workspace_id):  # no coroutine per decision otherwise
            await self._periods.ensure_subscribed(workspace_id)
        now = self._clock.now()
        reply, current = await self._decisions.decide(
            workspace_id, contacts, now, to_ms(now), dry_run=dry_run, rekey=rekey
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
        self._warm.learn(workspace_id, now, usage, reply.identity_version)
        return reply, usage


def _decisions(reply: DecideReply, usage: Usage | None) -> list[Decision]:
    return [
        Decision(
            allowed=outcome.reason is not Reason.LIMIT_REACHED or outcome.shadowed,
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

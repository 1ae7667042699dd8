"""The enforcement use cases: Check, Activate and ActivateBatch, and what they answer when
storage is unreachable."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from sidecar.domain.addresses import is_national
from sidecar.domain.clock import Clock, from_ms, to_ms
from sidecar.domain.contact import ContactFields, KeyedContact, key_text, validate_workspace_id
from sidecar.domain.decision import BatchResult, Decision, Policy, Reason, Usage
from sidecar.domain.errors import InvalidArgument, StaleSubscription, StorageError
from sidecar.domain.ports import AdmissionJournal, DecideReply, DecideRequest, DecisionStore
from sidecar.usecases.coalesce import Coalescer
from sidecar.usecases.contacts import ContactReader, has_national_phone
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.outage import OutageAnswers
from sidecar.usecases.periods import Periods

# a subscription changed this often during one decision is not worth chasing further
_STALE_RETRIES = 3
# workspaces whose last store reply is remembered
_LAST_MAX = 100_000


class Enforcer:
    """Decides whether contacts may be served, and counts them once per period.

    :param store: where counts live; each call is one atomic step there.
    :param contacts: validates and keys the contacts of requests.
    :param periods: each workspace's current period.
    :param clock: the injected time source.
    :param policy: what applies without a subscription, and which notifications to record.
    :param failure_mode: ``error`` raises ``StorageError`` when the store is unreachable;
        ``allow`` and ``deny`` answer a ``BACKEND_UNAVAILABLE`` decision instead (see
        ``OutageAnswers``; ``allow`` needs ``journal``).
    :param known: the record of contacts counted this period, filled by every decision and
        answering for them while the store is unreachable (default: none kept).
    :param journal: where ``allow`` writes the new contacts it lets in during an outage.
    :param warm_seconds: the warm path: a contact the record knows is counted this period is
        answered without the store while its workspace had a reply from the store this
        recently (0: never); the usage in such an answer is that reply's.
    """

    def __init__(
        self,
        store: DecisionStore,
        contacts: ContactReader,
        periods: Periods,
        clock: Clock,
        policy: Policy,
        *,
        failure_mode: str = "error",
        known: KnownContacts | None = None,
        journal: AdmissionJournal | None = None,
        warm_seconds: float = 0.0,
    ) -> None:
        self._store = store
        self._contacts = contacts
        self._periods = periods
        self._clock = clock
        self._policy = policy
        self.known = known if known is not None else KnownContacts(0)
        self.outage = OutageAnswers(failure_mode, self.known, periods, clock, journal)
        self._coalescer = Coalescer(store)
        self._warm = timedelta(seconds=warm_seconds) if self.known.capacity else timedelta()
        # each workspace's last reply from the store: until when the warm path may answer
        # from it, the usage it gave, and the identity version it reported (when that moves,
        # the record forgets the workspace)
        self._last: dict[str, tuple[datetime, Usage, int]] = {}

    async def check(
        self, workspace_id: str, contact: ContactFields, *, warm_tried: bool = False
    ) -> Decision:
        """What ``activate`` would answer; changes nothing.

        :param warm_tried: ``warm`` answered ``None`` for this contact just now (its answer
            is not looked for again).
        """
        return await self._one(workspace_id, contact, True, warm_tried)

    async def activate(
        self, workspace_id: str, contact: ContactFields, *, warm_tried: bool = False
    ) -> Decision:
        """Admit and count a new contact while below the limit; always allow an active one.

        :param warm_tried: as for ``check``.
        """
        return await self._one(workspace_id, contact, False, warm_tried)

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
        try:
            keyed = await self._key(workspace_id, key, national)
        except StorageError as exc:
            unkeyed: list[KeyedContact | None] = [None] * len(contacts)
            return BatchResult(await self.outage.many(exc, workspace_id, unkeyed, dry_run), None)
        try:
            reply, usage = await self._decide(
                workspace_id, keyed, key if national else None, dry_run
            )
        except StorageError as exc:
            return BatchResult(await self.outage.many(exc, workspace_id, keyed, dry_run), None)
        self._remember(workspace_id, usage.period.key, keyed, reply, dry_run)
        return BatchResult(_decisions(reply, None), usage)

    async def usage(self, workspace_id: str) -> Usage:
        """The workspace's usage in the current period."""
        validate_workspace_id(workspace_id)
        _, usage = await self._decide(workspace_id, [], None, dry_run=True)
        return usage

    async def _one(
        self, workspace_id: str, contact: ContactFields, dry_run: bool, warm_tried: bool
    ) -> Decision:
        validate_workspace_id(workspace_id)

        def key(region: str) -> list[KeyedContact]:
            return [self._contacts.one(contact, region=region)]

        national = bool(contact.phone) and is_national(contact.phone)
        try:
            keyed = await self._key(workspace_id, key, national)
        except StorageError as exc:
            return await self.outage.one(exc, workspace_id, None, dry_run)
        # ``warm`` does not look at national numbers: their region is known only now
        if self._warm and (national or not warm_tried):
            warm = self._warm_answer(workspace_id, keyed[0])
            if warm is not None:
                return warm
        try:
            reply, usage = await self._decide(
                workspace_id, keyed, key if national else None, dry_run
            )
        except StorageError as exc:
            return await self.outage.one(exc, workspace_id, keyed[0], dry_run)
        self._remember(workspace_id, usage.period.key, keyed, reply, dry_run)
        return _decisions(reply, usage)[0]

    def forget(self, workspace_id: str) -> None:
        """Answer the workspace's next decisions from the store: this process changed its
        subscription, a merge or an exemption (other processes learn it from their next
        reply, within ``warm_seconds``)."""
        self._last.pop(workspace_id, None)
        if self.known.capacity:
            self.known.forget(workspace_id)

    def _learn(self, workspace_id: str, now: datetime, usage: Usage, version: int) -> None:
        """Keep the workspace's last reply; forget its known contacts when a merge or an
        exemption moved its identity version since the reply before."""
        last = self._last.get(workspace_id)
        if last is not None and last[2] != version and self.known.capacity:
            self.known.forget(workspace_id)
        if len(self._last) > _LAST_MAX:
            self._last.clear()
        # fresh for warm_seconds, and never beyond the period the reply was in
        self._last[workspace_id] = (min(now + self._warm, usage.period.end), usage, version)

    def warm(self, workspace_id: str, contact: ContactFields) -> Decision | None:
        """The warm path's answer for ``contact`` without awaiting anything, or ``None``:
        then ``activate`` or ``check`` decides it (an invalid contact, one the record does
        not know, a workspace without a fresh reply, a national phone number)."""
        if not self._warm:
            return None
        last = self._last.get(workspace_id)
        if last is None or self._clock.now() >= last[0]:
            return None  # checked before keying: a stale workspace costs no more
        if contact.phone and is_national(contact.phone):
            return None  # its key depends on a region that may have to be read
        try:
            keyed = self._contacts.one(
                contact, region=self._periods.basis(workspace_id).default_region
            )
        except InvalidArgument:
            return None
        return self._known_answer(workspace_id, last[1], keyed)

    def _warm_answer(self, workspace_id: str, contact: KeyedContact) -> Decision | None:
        """The decision of a contact the record knows is counted in the period of the
        workspace's last reply, while that reply is fresh; ``None`` to ask the store."""
        last = self._last.get(workspace_id)
        if last is None or self._clock.now() >= last[0]:
            return None
        return self._known_answer(workspace_id, last[1], contact)

    def _known_answer(
        self, workspace_id: str, usage: Usage, contact: KeyedContact
    ) -> Decision | None:
        """``ALREADY_ACTIVE`` or ``EXEMPT`` with ``usage`` when the record knows the contact in
        the usage's period, else ``None``. Every key of the contact must lead to one identity
        in the record: a key the store has not linked yet needs the store to link it."""
        known = self.known.lookup_all(workspace_id, usage.period.key, contact)
        if known is None:
            return None
        # allowed, reason, contact_key, usage, identity_conflict, shadow_denied,
        # visitor_merged, from_local_record
        return Decision(
            True, known.reason, key_text(known.identity), usage, False, False, False, True
        )

    def _remember(
        self,
        workspace_id: str,
        period_key: str,
        contacts: list[KeyedContact],
        reply: DecideReply,
        dry_run: bool,
    ) -> None:
        """Keep the contacts the decision settled in the record of known contacts."""
        known = self.known
        if known.capacity:
            for contact, outcome in zip(contacts, reply.outcomes, strict=True):
                known.remember_outcome(workspace_id, period_key, contact, outcome, dry_run)

    async def _key(
        self, workspace_id: str, key: Callable[[str], list[KeyedContact]], national: bool
    ) -> list[KeyedContact]:
        """Key contacts under the workspace's default phone region. A national number reads
        the region first when this process knows none for the workspace (it may have been set
        since); a region that changed later is caught by the decision script's version check."""
        region = self._periods.basis(workspace_id).default_region
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
        """One decision script call; when the subscription changed under it, learn the new
        basis, key national phone numbers again if the region moved (``rekey``), and retry."""
        if self._periods.unsubscribed(workspace_id):  # no coroutine per decision otherwise
            await self._periods.ensure_subscribed(workspace_id)
        now = self._clock.now()
        region = self._periods.basis(workspace_id).default_region
        for _ in range(_STALE_RETRIES):
            current = self._periods.current(workspace_id, now)
            decide = self._coalescer.decide if len(contacts) == 1 else self._store.decide
            try:
                reply = await decide(
                    DecideRequest(
                        workspace_id=workspace_id,
                        period=current.period,
                        now_ms=to_ms(now),
                        expire_at_ms=current.expire_at_ms,
                        policy=self._policy,
                        subscription_version=current.version,
                        contacts=contacts,
                        dry_run=dry_run,
                        day=current.day,
                    )
                )
            except StaleSubscription as stale:
                self._periods.learn(workspace_id, stale.basis)
                if rekey is not None and stale.basis.default_region != region:
                    region = stale.basis.default_region
                    contacts = rekey(region)
                continue
            trial_end = from_ms(reply.trial_until_ms) if reply.trial_until_ms else None
            usage = Usage(
                current.period, reply.active, reply.limit, reply.plan, trial_end, reply.channels
            )
            self._learn(workspace_id, now, usage, reply.identity_version)
            return reply, usage
        raise StorageError("the subscription changed during the decision", transient=True)


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
        )
        for outcome in reply.outcomes
    ]

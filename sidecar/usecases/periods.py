"""Each workspace's current billing period, from the subscription basis this process last saw.

A workspace's period depends on its subscription's time zone and start. The process remembers
them per workspace with the subscription's version; the decision script compares the version,
so a changed subscription costs one retry (``learn``) and never a wrong period. Operator calls
that must follow the subscription ``refresh`` it first. ``PeriodDecisions`` makes every
decision script call in the period, with that retry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.cache import LruCache
from sidecar.domain.clock import from_ms, to_ms
from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Policy
from sidecar.domain.errors import (
    FailedPrecondition,
    PeriodClosed,
    StaleSubscription,
    StorageError,
)
from sidecar.domain.period import BillingPeriod, months_after, period_at
from sidecar.domain.ports import DecideReply, DecideRequest, DecisionStore

# workspaces whose basis is kept, and periods and days computed
CACHE_MAX = 100_000
_UTC = SubscriptionBasis()
# a subscription changed this often during one decision is not worth chasing further
STALE_RETRIES = 3


@dataclass(slots=True)
class CurrentPeriod:
    """A workspace's period at an instant (built for every decision: not frozen, for speed).

    :param expire_at_ms: when the period's member set expires (unix ms): the end of the
        retention window.
    :param version: the subscription version the period was computed from.
    :param day: the date in the period's time zone (YYYY-MM-DD).
    """

    period: BillingPeriod
    expire_at_ms: int
    version: str
    zone: ZoneInfo
    day: str = ""


def _day_at(now: datetime, zone: ZoneInfo) -> tuple[str, datetime, datetime]:
    """The date at ``now`` in ``zone``, and the instants its day starts and ends."""
    date = now.astimezone(zone).date()
    start = datetime.combine(date, time(), zone)
    end = datetime.combine(date + timedelta(days=1), time(), zone)
    return date.isoformat(), start, end


class Periods:
    """The per-workspace subscription basis and the periods computed from it.

    :param store: where the basis is read on ``refresh``.
    :param retention_periods: past periods whose member sets stay listable.
    :param cache_max: the most workspaces whose basis is kept (one forgotten costs its next
        decision a retry), and the most periods and days kept computed.
    """

    def __init__(
        self,
        store: DecisionStore,
        retention_periods: int,
        *,
        require_subscription: bool = False,
        cache_max: int = CACHE_MAX,
    ) -> None:
        self._store = store
        self._retention = retention_periods
        self._require = require_subscription
        self._bases: LruCache[str, SubscriptionBasis] = LruCache(cache_max)
        self._periods: LruCache[tuple[str, int], tuple[BillingPeriod, int, ZoneInfo]] = LruCache(
            cache_max
        )
        self._days: LruCache[str, tuple[str, datetime, datetime]] = LruCache(cache_max)

    def current(self, workspace_id: str, now: datetime) -> CurrentPeriod:
        """The workspace's period at ``now`` as last seen (cached until the period ends)."""
        basis = self._bases.get(workspace_id, _UTC)
        cache_key = (basis.timezone, basis.starts_at_ms)
        found = self._periods.get(cache_key)
        if found is None or not found[0].contains(now):
            found = self._period_of(basis, now)
            self._periods.put(cache_key, found)
        day = self._days.get(basis.timezone)
        if day is None or not day[1] <= now < day[2]:
            day = _day_at(now, found[2])
            self._days.put(basis.timezone, day)
        return CurrentPeriod(found[0], found[1], basis.version, found[2], day[0])

    def at(self, workspace_id: str, instant: datetime) -> CurrentPeriod:
        """The workspace's period at ``instant`` (an event's time, 1970 or later) as last seen:
        the cached period when it holds the instant, else computed without caching it, so
        that the period of now stays cached."""
        basis = self._bases.get(workspace_id, _UTC)
        found = self._periods.get((basis.timezone, basis.starts_at_ms))
        if found is None or not found[0].contains(instant):
            found = self._period_of(basis, instant)
        day = self._days.get(basis.timezone)
        if day is None or not day[1] <= instant < day[2]:
            day = _day_at(instant, found[2])
        return CurrentPeriod(found[0], found[1], basis.version, found[2], day[0])

    def _period_of(
        self, basis: SubscriptionBasis, instant: datetime
    ) -> tuple[BillingPeriod, int, ZoneInfo]:
        """The period at ``instant`` under ``basis``, when its members expire, its zone."""
        zone = ZoneInfo(basis.timezone)
        starts = from_ms(basis.starts_at_ms) if basis.starts_at_ms else None
        period = period_at(instant, zone, starts)
        return period, to_ms(months_after(period, self._retention, zone)), zone

    def basis(self, workspace_id: str) -> SubscriptionBasis:
        """The workspace's subscription basis as last seen (no subscription: UTC, no region)."""
        return self._bases.get(workspace_id, _UTC)

    def learn(self, workspace_id: str, basis: SubscriptionBasis) -> None:
        """Remember what the workspace's periods depend on now."""
        self._bases.put(workspace_id, basis)

    def unsubscribed(self, workspace_id: str) -> bool:
        """Whether ``require_subscription`` is on and this process knows of no subscription
        of the workspace (no round trip: what ``ensure_subscribed`` must look at)."""
        return self._require and not self.basis(workspace_id).version

    async def ensure_subscribed(self, workspace_id: str) -> None:
        """With ``require_subscription``, refuse a workspace that has no subscription (read
        again before refusing: it may have been set since this process looked).

        :raise FailedPrecondition: naming the workspace.
        """
        if not self.unsubscribed(workspace_id):
            return
        await self.refresh(workspace_id)
        if not self.basis(workspace_id).version:
            raise FailedPrecondition(
                f"workspace {workspace_id} has no subscription (MAC_REQUIRE_SUBSCRIPTION is on)"
            )

    async def refresh(self, workspace_id: str) -> None:
        """Read the workspace's basis from storage, for calls that do not decide."""
        self.learn(workspace_id, await self._store.period_basis(workspace_id))


class PeriodDecisions:
    """Decision script calls in a workspace's period, each retried when the subscription
    changed under it: the new basis is learnt, and the call made again in the period it
    gives.

    :param send: ``DecisionStore.decide``, or what groups its calls (``Coalescer.decide``).
    :param periods: each workspace's period, and where a changed basis is learnt.
    :param policy: what applies without a subscription, sent with every call.
    :param lateness: how long after its end a period still takes an event that occurred in
        it (``MAC_LATENESS_SECONDS``); ``None``: as long as the store has not closed it (the
        journal's replay).
    """

    def __init__(
        self,
        send: Callable[[DecideRequest], Awaitable[DecideReply]],
        periods: Periods,
        policy: Policy,
        lateness: timedelta | None = None,
    ) -> None:
        self._send = send
        self._periods = periods
        self._policy = policy
        self._lateness = lateness

    def event_period(
        self, workspace_id: str, at: datetime, now: datetime
    ) -> tuple[CurrentPeriod, bool]:
        """The workspace's period of an event that occurred at ``at`` (1970 or later), decided
        at ``now``, and whether it is late: not the period of ``now``.

        :raise PeriodClosed: its end is ``lateness`` or more before ``now``.
        """
        current = self._periods.at(workspace_id, at)
        period = current.period
        if period.contains(now):
            return current, False
        lateness = self._lateness
        if lateness is not None and period.end + lateness <= now:
            raise PeriodClosed(period.name, to_ms(period.end + lateness))
        return current, True

    async def decide(
        self,
        workspace_id: str,
        contacts: list[KeyedContact],
        at: datetime,
        at_ms: int,
        *,
        dry_run: bool = False,
        rekey: Callable[[str], list[KeyedContact]] | None = None,
        now: datetime | None = None,
    ) -> tuple[DecideReply, CurrentPeriod]:
        """Decide ``contacts`` in order at the instant ``at`` (``at_ms`` in unix ms), in the
        workspace's period then.

        :param rekey: keys the contacts again in a region, when a changed subscription moved
            the workspace's default phone region (national numbers).
        :param now: given when ``at`` is an event's time: the instant of the call, which
            tells whether the event is late (``event_period``).
        :return: the reply, and the period it was decided in.
        :raise StorageError: transient, when the subscription changed ``STALE_RETRIES``
            times; and any storage error.
        :raise PeriodClosed: the event's period is closed (``event_period``, or the store
            closed it); nothing was written.
        """
        periods = self._periods
        region = periods.basis(workspace_id).default_region if rekey is not None else ""
        late = False
        for _ in range(STALE_RETRIES):
            if now is None:
                current = periods.current(workspace_id, at)
            else:  # a changed subscription may move the event to another period
                current, late = self.event_period(workspace_id, at, now)
            try:
                reply = await self._send(
                    DecideRequest(
                        workspace_id=workspace_id,
                        period=current.period,
                        now_ms=at_ms,
                        expire_at_ms=current.expire_at_ms,
                        policy=self._policy,
                        subscription_version=current.version,
                        contacts=contacts,
                        dry_run=dry_run,
                        day=current.day,
                        late=late,
                    )
                )
            except StaleSubscription as stale:
                periods.learn(workspace_id, stale.basis)
                if rekey is not None and stale.basis.default_region != region:
                    region = stale.basis.default_region
                    contacts = rekey(region)
                continue
            return reply, current
        raise StorageError("the subscription changed during the decision", transient=True)

"""The operators' use cases: subscriptions, usage and history, the contacts counted in a
period."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from sidecar.domain.addresses import validate_region
from sidecar.domain.audit import AuditContext
from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.clock import Clock, from_ms, to_ms
from sidecar.domain.contact import key_text, validate_workspace_id
from sidecar.domain.decision import (
    UNSPECIFIED_CHANNEL,
    Usage,
    UsageReport,
    forecast_active,
)
from sidecar.domain.errors import Aborted, FailedPrecondition, InvalidArgument
from sidecar.domain.period import BillingPeriod, months_after, period_named
from sidecar.domain.ports import OperatorStore
from sidecar.domain.subscription import (
    Resolved,
    Subscription,
    SubscriptionChange,
    default_subscription,
    resolve,
    validate_flood_guard,
    validate_overage_percent,
    validate_thresholds,
    validate_timezone,
    validate_version,
)
from sidecar.usecases.closing import PeriodClosing
from sidecar.usecases.enforcer import Enforcer
from sidecar.usecases.periods import CurrentPeriod, Periods

_CURSOR = re.compile(r"[0-9]{1,18}")
PAGE_DEFAULT = 1000
PAGE_MAX = 10_000
# Times a subscription change is re-applied when another changed the subscription meanwhile.
CHANGE_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class ContactPage:
    """One page of a period's counted contact keys."""

    contact_keys: list[str]
    next_page_token: str
    total: int
    period: str


class Admin:
    """What operators do through the Admin service, besides merges, exemptions and events.

    :param default_limit: the limit of a workspace without a subscription.
    :param retention_periods: past periods whose member sets stay listable.
    :param default_thresholds: the service's thresholds, for a workspace without its own.
    """

    def __init__(
        self,
        store: OperatorStore,
        enforcer: Enforcer,
        periods: Periods,
        catalog: PlanCatalog,
        clock: Clock,
        *,
        default_limit: int,
        retention_periods: int,
        closing: PeriodClosing,
        default_thresholds: tuple[int, ...] = (),
    ) -> None:
        self._store = store
        self._enforcer = enforcer
        self._periods = periods
        self._catalog = catalog
        self._clock = clock
        self._default_limit = default_limit
        self._retention = retention_periods
        self._thresholds = default_thresholds
        self._closing = closing

    async def set_subscription(self, change: SubscriptionChange, *, admin: str) -> Resolved:
        """Apply ``change`` to the workspace's subscription (or to a new one, when the change
        names a plan) and store the result, validated against the catalog, with its audit
        record (by ``admin``).

        The change is applied to the subscription as read and stored only if nobody changed
        it meanwhile; else it is applied again to what they stored, so two operators changing
        different fields at once both keep their change.
        """
        validate_workspace_id(change.workspace_id)
        for _ in range(CHANGE_ATTEMPTS):
            stored = (await self._store.subscription(change.workspace_id)).resolved
            current = stored.subscription if stored is not None else None
            sub = self._validated(change.applied_to(current))
            version = stored.version if stored is not None else 0
            now = self._clock.now()
            audit = AuditContext(admin, "SetSubscription", to_ms(now))
            if await self._store.set_subscription(resolve(sub, self._catalog), now, version, audit):
                self._enforcer.forget(change.workspace_id)
                return await self.get_subscription(change.workspace_id)
        raise Aborted(
            f"the subscription of {change.workspace_id} kept changing while this change was "
            "applied; try again"
        )

    @staticmethod
    def _validated(sub: Subscription) -> Subscription:
        validate_version(sub.platform_version)
        return dataclasses.replace(
            sub,
            timezone=validate_timezone(sub.timezone),
            default_region=validate_region(sub.default_region),
            thresholds=validate_thresholds(sub.thresholds),
            overage_percent=validate_overage_percent(sub.overage_percent),
            flood_guard=validate_flood_guard(sub.flood_guard),
            # the epoch clears the start
            starts_at=sub.starts_at if sub.starts_at and sub.starts_at.timestamp() else None,
        )

    async def get_subscription(self, workspace_id: str) -> Resolved:
        """The workspace's subscription, or the default plan's when none was set."""
        validate_workspace_id(workspace_id)
        stored = await self._store.subscription(workspace_id)
        resolved = stored.resolved or default_subscription(
            workspace_id, self._catalog, self._default_limit
        )
        resolved = dataclasses.replace(resolved, default_thresholds=self._thresholds)
        if stored.trial_until_ms > to_ms(self._clock.now()):
            resolved = dataclasses.replace(resolved, trial_ends_at=from_ms(stored.trial_until_ms))
        return resolved

    async def _period(self, workspace_id: str, name: str) -> CurrentPeriod:
        """The period called ``name`` in the workspace's time zone (default: the current)."""
        now = self._clock.now()
        await self._periods.refresh(workspace_id)
        current = self._periods.current(workspace_id, now)
        if not name:
            return current
        sub = (await self.get_subscription(workspace_id)).subscription
        try:
            period = period_named(name, sub.zone, sub.starts_at)
        except ValueError:
            raise InvalidArgument("period", "must be YYYY-MM, like 2026-11") from None
        if period.start > now:
            raise InvalidArgument("period", f"{name} has not started yet")
        return dataclasses.replace(current, period=period, zone=sub.zone)

    async def usage(self, workspace_id: str, period: str = "") -> UsageReport:
        """The period's report (``_report``) with the workspace's flood guard and the time of
        its last flood."""
        report = await self._report(workspace_id, period)
        guard = (await self.get_subscription(workspace_id)).subscription.flood_guard
        last_ms = await self._store.last_flood_ms(workspace_id)
        return dataclasses.replace(
            report, flood_guard=guard, last_flood_at=from_ms(last_ms) if last_ms else None
        )

    async def _report(self, workspace_id: str, period: str = "") -> UsageReport:
        """A period's usage (default the current one) with its breakdown by channel and day
        and its forecast, and every past period's count, newest first. A past period of
        which nothing was recorded answers zeros and ``recorded=False``. A period due to
        close is closed first (``closed_at``)."""
        validate_workspace_id(workspace_id)
        wanted = (await self._period(workspace_id, period)).period
        closed_at = await self._closing.closed_at(workspace_id, wanted)
        current = await self._enforcer.usage(workspace_id)
        counts = {p.key: p for p in await self._store.history(workspace_id)}
        history = sorted(
            (p for key, p in counts.items() if key != current.period.key),
            key=lambda p: p.name,
            reverse=True,
        )
        if wanted.key == current.period.key:
            usage = current
        elif (found := counts.get(wanted.key)) is not None:
            usage = Usage(wanted, found.active, found.limit, "", overage=found.overage)
        else:
            return UsageReport(
                Usage(wanted, 0, 0, ""), history, recorded=False, closed_at=closed_at
            )
        channels, days = _breakdown(
            await self._store.breakdown(workspace_id, wanted.key), usage.active
        )
        return UsageReport(
            usage,
            history,
            recorded=True,
            channels=channels,
            days=days,
            forecast_active=forecast_active(usage.active, wanted, self._clock.now()),
            closed_at=closed_at,
        )

    async def list_contacts(
        self, workspace_id: str, period: str, page_token: str, page_size: int
    ) -> ContactPage:
        """One page of the contact keys counted in a period (SSCAN: a key counted before the
        listing started and still counted is listed; page sizes are approximate)."""
        validate_workspace_id(workspace_id)
        found = await self._period(workspace_id, period)
        wanted: BillingPeriod = found.period
        if months_after(wanted, self._retention, found.zone) <= self._clock.now():
            raise FailedPrecondition(
                f"the contacts of {wanted.name} are no longer kept "
                f"(the current period and {self._retention} before it are)"
            )
        if page_token and not _CURSOR.fullmatch(page_token):
            raise InvalidArgument("page_token", "is not a token this service returned")
        if not 0 <= page_size <= PAGE_MAX:
            raise InvalidArgument("page_size", f"must be 1 to {PAGE_MAX}")
        size = page_size or PAGE_DEFAULT
        cursor = int(page_token or 0)
        keys: list[bytes] = []
        total = 0
        while True:
            page = await self._store.scan_members(workspace_id, wanted.key, cursor, size)
            cursor, total = page.cursor, page.total
            keys.extend(page.keys)
            if cursor == 0 or len(keys) >= size:
                break
        token = str(cursor) if cursor else ""
        return ContactPage([key_text(k) for k in keys], token, total, wanted.name)


def _breakdown(
    fields: dict[str, int], active: int
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """Channels (most first) and days (oldest first) of a period's usage hash. Contacts the
    channels do not account for (counted before channels were recorded) are unspecified."""
    by_channel = {k[3:]: max(v, 0) for k, v in fields.items() if k.startswith("ch:")}
    missing = active - sum(by_channel.values())
    if missing > 0:
        by_channel[UNSPECIFIED_CHANNEL] = by_channel.get(UNSPECIFIED_CHANNEL, 0) + missing
    channels = sorted(((c, n) for c, n in by_channel.items() if n), key=lambda x: (-x[1], x[0]))
    days = sorted((k[2:], v) for k, v in fields.items() if k.startswith("d:"))
    return channels, days

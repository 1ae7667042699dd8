"""The operators' use cases: subscriptions, usage and history, counted contacts, events."""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sidecar.domain.catalog import PlanCatalog
from sidecar.domain.clock import Clock
from sidecar.domain.contact import key_text, validate_workspace_id
from sidecar.domain.decision import Event, Merged, Usage
from sidecar.domain.errors import FailedPrecondition, InvalidArgument
from sidecar.domain.period import BillingPeriod, months_after, period_named
from sidecar.domain.subscription import (
    Resolved,
    Subscription,
    default_subscription,
    from_fields,
    resolve,
    to_fields,
    validate_timezone,
    validate_version,
)
from sidecar.storage.keys import WorkspaceKeys
from sidecar.storage.store import RedisStore
from sidecar.usecases.enforcer import ContactFields, Enforcer

_EVENT_ID = re.compile(r"[0-9]{1,19}-[0-9]{1,19}")
_CURSOR = re.compile(r"[0-9]{1,18}")
PAGE_DEFAULT = 1000
WATCH_COUNT = 100
RESUME_OVERLAP_MS = 5000
PAGE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class PeriodCount:
    """A past period's count and the limit at its last admission."""

    period: str
    active: int
    limit: int


@dataclass(frozen=True, slots=True)
class ContactPage:
    """One page of a period's counted contact keys."""

    contact_keys: list[str]
    next_page_token: str
    total: int
    period: str


class Admin:
    """What operators do through the Admin service.

    :param watch_refresh: seconds between looks for new workspaces while watching them all.
    """

    def __init__(
        self,
        store: RedisStore,
        enforcer: Enforcer,
        catalog: PlanCatalog,
        clock: Clock,
        *,
        default_limit: int,
        retention_periods: int,
        watch_block_ms: int = 1000,
        watch_refresh: float = 2.0,
    ) -> None:
        self._store = store
        self._enforcer = enforcer
        self._catalog = catalog
        self._clock = clock
        self._default_limit = default_limit
        self._retention = retention_periods
        self._block_ms = watch_block_ms
        self._refresh = watch_refresh

    async def set_subscription(self, sub: Subscription) -> Resolved:
        """Validate ``sub`` against the catalog and make it the workspace's subscription."""
        validate_workspace_id(sub.workspace_id)
        validate_timezone(sub.timezone)
        validate_version(sub.platform_version)
        if sub.starts_at is None:
            # A change of packs or plan keeps the start: dropping it would re-open the month's
            # period and count its contacts again.
            fields, _ = await self._store.subscription(WorkspaceKeys(sub.workspace_id))
            if int(fields.get("starts_at", "0")):
                kept = datetime.fromtimestamp(int(fields["starts_at"]) / 1000, UTC)
                sub = dataclasses.replace(sub, starts_at=kept)
        elif sub.starts_at.timestamp() == 0:
            sub = dataclasses.replace(sub, starts_at=None)  # the epoch clears the start
        resolved = resolve(sub, self._catalog)
        await self._store.set_subscription(
            WorkspaceKeys(sub.workspace_id), to_fields(resolved, self._clock.now())
        )
        return await self.get_subscription(sub.workspace_id)

    async def get_subscription(self, workspace_id: str) -> Resolved:
        """The workspace's subscription, or the default plan's when none was set."""
        validate_workspace_id(workspace_id)
        fields, trial_until = await self._store.subscription(WorkspaceKeys(workspace_id))
        if fields:
            resolved = from_fields(workspace_id, fields)
        else:
            resolved = default_subscription(workspace_id, self._catalog, self._default_limit)
        now_ms = self._clock.now().timestamp() * 1000
        if trial_until > now_ms:
            trial_end = datetime.fromtimestamp(trial_until / 1000, UTC)
            resolved = dataclasses.replace(resolved, trial_ends_at=trial_end)
        return resolved

    async def _period(self, workspace_id: str, name: str) -> tuple[BillingPeriod, ZoneInfo]:
        """The period called ``name`` in the workspace's time zone (default: the current),
        and that zone."""
        now = self._clock.now()
        if not name:
            await self._enforcer.usage(workspace_id)  # the period follows the subscription
            return self._enforcer.period_of(workspace_id, now)[0], self._enforcer.zone_of(
                workspace_id
            )
        resolved = await self.get_subscription(workspace_id)
        sub = resolved.subscription
        try:
            period = period_named(name, sub.zone, sub.starts_at)
        except ValueError:
            raise InvalidArgument("period", "must be YYYY-MM, like 2026-11") from None
        if period.start > now:
            raise InvalidArgument("period", f"{name} has not started yet")
        return period, sub.zone

    async def usage(self, workspace_id: str, period: str = "") -> tuple[Usage, list[PeriodCount]]:
        """A period's usage (default the current one), and every past period's count."""
        validate_workspace_id(workspace_id)
        wanted, _ = await self._period(workspace_id, period)
        current = await self._enforcer.usage(workspace_id)
        counts = await self._store.counts(WorkspaceKeys(workspace_id))
        history = sorted(
            (
                PeriodCount(key.split("@")[0], int(value), int(counts.get(f"{key}:limit", 0)))
                for key, value in counts.items()
                if not key.endswith(":limit") and key != current.period.key
            ),
            key=lambda p: p.period,
            reverse=True,
        )
        if wanted.key == current.period.key:
            return current, history
        active = int(counts.get(wanted.key, 0))
        limit = int(counts.get(f"{wanted.key}:limit", 0))
        return Usage(wanted, active, limit, ""), history

    async def merge(
        self, workspace_id: str, sources: Sequence[ContactFields], target: ContactFields
    ) -> tuple[Merged, Usage]:
        """Fold identities into one (see ``Enforcer.merge``)."""
        return await self._enforcer.merge(workspace_id, sources, target)

    async def set_exempt(
        self, workspace_id: str, contacts: Sequence[ContactFields], exempt: bool
    ) -> list[str]:
        """Exempt contacts, or make them countable again (see ``Enforcer.set_exempt``)."""
        return await self._enforcer.set_exempt(workspace_id, contacts, exempt)

    async def list_contacts(
        self, workspace_id: str, period: str, page_token: str, page_size: int
    ) -> ContactPage:
        """One page of the contact keys counted in a period (SSCAN: a key counted before the
        listing started and still counted is listed; page sizes are approximate)."""
        validate_workspace_id(workspace_id)
        wanted, zone = await self._period(workspace_id, period)
        if months_after(wanted, self._retention, zone) <= self._clock.now():
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
            cursor, found, total = await self._store.scan_members(
                WorkspaceKeys(workspace_id), wanted.key, cursor, size
            )
            keys.extend(found)
            if cursor == 0 or len(keys) >= size:
                break
        token = str(cursor) if cursor else ""
        return ContactPage([key_text(k) for k in keys], token, total, wanted.name)

    async def watch(self, workspace_id: str, after_id: str) -> AsyncIterator[Event]:
        """Recorded events after ``after_id``, oldest first, then live ones, forever.

        With no workspace, events of every workspace in id order. Resuming then starts
        ``RESUME_OVERLAP_MS`` before ``after_id``, so an event of another workspace recorded
        in the same moment is not skipped: deliveries are at least once, deduplicate on
        (workspace, id).
        """
        if workspace_id:
            validate_workspace_id(workspace_id)
        if after_id and not _EVENT_ID.fullmatch(after_id):
            raise InvalidArgument("after_id", "must be an event id like 1763900000000-0")
        start = after_id or "0-0"
        if workspace_id:
            cursors = {workspace_id: start}
        else:
            start = f"{max(_id_tuple(start)[0] - RESUME_OVERLAP_MS, 0)}-0" if after_id else start
            cursors = {}
        refreshed = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if not workspace_id and loop.time() - refreshed >= self._refresh:
                for ws in await self._store.workspaces():
                    cursors.setdefault(ws, start)
                refreshed = loop.time()
            if not cursors:
                await asyncio.sleep(self._block_ms / 1000)
                continue
            events = await self._store.read_events(cursors, self._block_ms, WATCH_COUNT)
            for event in _in_order(events, WATCH_COUNT):
                cursors[event.workspace_id] = event.id
                yield event


def _in_order(events: list[Event], count: int) -> list[Event]:
    """The events that can go out in id order now.

    A stream that returned ``count`` events may hold more, older than what other streams
    returned; events past its last one wait for the next read, so ids never go backwards.
    """
    last: dict[str, tuple[int, int]] = {}
    per_stream: dict[str, int] = {}
    for event in events:
        per_stream[event.workspace_id] = per_stream.get(event.workspace_id, 0) + 1
        last[event.workspace_id] = _id_tuple(event.id)
    full = [last[ws] for ws, n in per_stream.items() if n >= count]
    cutoff = min(full) if full else None
    ready = [e for e in events if cutoff is None or _id_tuple(e.id) <= cutoff]
    return sorted(ready, key=lambda e: (_id_tuple(e.id), e.workspace_id))


def _id_tuple(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)

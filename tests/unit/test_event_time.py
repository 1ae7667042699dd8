"""Event time in the use cases, over an in-memory store: which period an ``occurred_at`` is
decided in, what is refused before storage is asked, and what coalescing never groups."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.contact import ContactFields, KeyedContact
from sidecar.domain.decision import Reason
from sidecar.domain.errors import InvalidArgument, PeriodClosed
from sidecar.domain.period import period_at
from sidecar.domain.ports import DecideReply, DecideRequest
from sidecar.storage.journal import read_segment
from sidecar.usecases.coalesce import Coalescer
from sidecar.usecases.periods import PeriodDecisions, Periods
from tests.support.constants import SMALL_POLICY as POLICY
from tests.support.memory_store import MemoryStore
from tests.unit.test_usecases import World

ANA = ContactFields(email="ana@example.com")
DECEMBER = datetime(2026, 12, 1, tzinfo=UTC)


def world_at(instant: datetime, mode: str = "error", journal_dir: Path | None = None) -> World:
    world = World(mode, journal_dir=journal_dir)
    world.clock.set(instant)
    return world


def test_an_event_period_is_late_when_not_the_period_of_now_and_closed_past_the_lateness() -> None:
    periods = Periods(MemoryStore(), retention_periods=2)
    decisions = PeriodDecisions(MemoryStore().decide, periods, POLICY, timedelta(seconds=300))
    now = DECEMBER + timedelta(seconds=10)
    current, late = decisions.event_period("acme", now - timedelta(seconds=5), now)
    assert (current.period.name, late, current.day) == ("2026-12", False, "2026-12-01")
    current, late = decisions.event_period("acme", DECEMBER - timedelta(seconds=1), now)
    assert (current.period.name, late, current.day) == ("2026-11", True, "2026-11-30")
    # the period of now stays what the cache holds for the workspace
    assert periods.current("acme", now).period.name == "2026-12"
    with pytest.raises(PeriodClosed) as closed:
        decisions.event_period(
            "acme", DECEMBER - timedelta(days=1), DECEMBER + timedelta(seconds=300)
        )
    assert str(closed.value) == "occurred_at: period 2026-11 is closed"
    # the next period (an event ahead of the clock, within the skew) is late too: not now's
    _, late = decisions.event_period("acme", DECEMBER, DECEMBER - timedelta(seconds=30))
    assert late


async def test_a_late_event_is_decided_at_its_own_time_and_marked_late() -> None:
    berlin_end = DECEMBER - timedelta(hours=1)  # 00:00 on 1 December in Berlin
    world = world_at(berlin_end + timedelta(seconds=3))
    world.store.bases["acme"] = SubscriptionBasis("Europe/Berlin", 0, "1")
    await world.periods.refresh("acme")
    event = datetime(2026, 11, 30, 22, 59, 58, tzinfo=UTC)  # 23:59:58 in Berlin
    decision = await world.enforcer.activate("acme", ANA, event)
    assert decision.usage is not None
    assert decision.usage.period.name == "2026-11"
    sent = world.store.decided[-1]
    assert (sent.period.key, sent.day, sent.late) == ("2026-11", "2026-11-30", True)
    assert sent.now_ms == int(event.timestamp() * 1000)
    await world.enforcer.activate("acme", ANA, berlin_end)
    assert (world.store.decided[-1].period.key, world.store.decided[-1].late) == ("2026-12", False)


@pytest.mark.parametrize("mode", ["allow", "deny", "error"])
async def test_a_refused_event_time_never_reaches_the_store_nor_the_journal(
    mode: str, tmp_path: Path
) -> None:
    world = world_at(DECEMBER + timedelta(seconds=300), mode, tmp_path)
    world.store.down = True
    with pytest.raises(PeriodClosed):
        await world.enforcer.activate("acme", ANA, DECEMBER - timedelta(seconds=1))
    with pytest.raises(PeriodClosed):
        await world.enforcer.activate_batch("acme", [ANA], DECEMBER - timedelta(seconds=1))
    with pytest.raises(InvalidArgument) as ahead:
        await world.enforcer.check("acme", ANA, world.clock.now() + timedelta(seconds=61))
    assert ahead.value.field == "occurred_at"
    assert world.store.decided == []
    assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


async def test_an_outage_journals_a_contact_at_its_event_time(tmp_path: Path) -> None:
    world = world_at(DECEMBER + timedelta(seconds=3), "allow", tmp_path)
    world.store.down = True
    event = DECEMBER - timedelta(seconds=2)
    decision = await world.enforcer.activate("acme", ANA, event)
    assert (decision.allowed, decision.reason) == (True, Reason.BACKEND_UNAVAILABLE)
    [segment] = await asyncio.to_thread(lambda: list(tmp_path.iterdir()))
    entries, _ = read_segment(await asyncio.to_thread(segment.read_bytes))
    assert [e.at_ms for e in entries] == [int(event.timestamp() * 1000)]


class HeldStore(MemoryStore):
    """A store whose decisions wait until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()

    async def decide(self, request: DecideRequest) -> DecideReply:
        await self.release.wait()
        return await super().decide(request)


async def test_coalescing_never_groups_requests_of_different_periods_or_lateness() -> None:
    store = HeldStore()
    coalescer = Coalescer(store)
    november = period_at(DECEMBER - timedelta(days=1))
    december = period_at(DECEMBER)

    def request(n: int, period_name: str, late: bool) -> DecideRequest:
        period = november if period_name == "2026-11" else december
        contact = KeyedContact((bytes([n]) * 14,), b"", "")
        return DecideRequest("acme", period, 0, 0, POLICY, "", [contact], late=late)

    first = asyncio.ensure_future(coalescer.decide(request(1, "2026-12", False)))
    await asyncio.sleep(0)  # on its way: the next ones gather behind it
    rest = [
        asyncio.ensure_future(coalescer.decide(request(n, name, late)))
        for n, name, late in [(2, "2026-12", False), (3, "2026-11", True), (4, "2026-12", False)]
    ]
    await asyncio.sleep(0)
    store.release.set()
    await asyncio.gather(first, *rest)
    sent = sorted(((r.period.key, r.late, len(r.contacts)) for r in store.decided), key=repr)
    assert sent == [("2026-11", True, 1), ("2026-12", False, 1), ("2026-12", False, 2)]

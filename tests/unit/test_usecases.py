"""The use cases over an in-memory store: the period basis and its retry, failure modes, batch
bounds, and what a merge is given."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sidecar.domain.basis import SubscriptionBasis
from sidecar.domain.clock import ManualClock, to_ms
from sidecar.domain.contact import ContactFields, ContactKeyer, Identifier, Kind, key_text
from sidecar.domain.decision import Reason
from sidecar.domain.errors import InvalidArgument, StorageError
from sidecar.storage.journal import FileJournal
from sidecar.usecases.contacts import ContactReader
from sidecar.usecases.enforcer import Enforcer
from sidecar.usecases.identities import Identities
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.outage import OutageAnswers
from sidecar.usecases.periods import Periods
from sidecar.usecases.warm import WarmPath
from tests.support.constants import SECRET
from tests.support.constants import SMALL_POLICY as POLICY
from tests.support.memory_store import MemoryStore

ANA = ContactFields(email="ana@example.com")
BEA = ContactFields(phone="+4915112345678")
CID = ContactFields(id="crm-3")
KEYER = ContactKeyer(SECRET.encode())


def ana_key() -> str:
    return key_text(KEYER.key(Identifier(Kind.EMAIL, "ana@example.com")))


class World:
    """An enforcer and identities over one memory store, at a manual clock."""

    def __init__(
        self, failure_mode: str = "error", batch_max: int = 10, journal_dir: Path | None = None
    ) -> None:
        self.store = MemoryStore()
        self.clock = ManualClock(datetime(2026, 11, 15, 12, 0, tzinfo=UTC))
        contacts = ContactReader(KEYER, batch_max)
        self.periods = Periods(self.store, retention_periods=2)
        journal = FileJournal(str(journal_dir), 1000) if journal_dir is not None else None
        known = KnownContacts(0)
        self.enforcer = Enforcer(
            self.store,
            contacts,
            self.periods,
            self.clock,
            POLICY,
            known=known,
            outage=OutageAnswers(failure_mode, known, self.periods, self.clock, journal),
            warm=WarmPath(known, contacts, self.periods, self.clock),
        )
        self.identities = Identities(self.store, contacts, self.periods, self.enforcer, self.clock)


async def test_a_changed_subscription_costs_one_retry_and_moves_the_period() -> None:
    world = World()
    # 2026-11-15 in Auckland is still November, but its month started 13 hours earlier
    world.store.bases["acme"] = SubscriptionBasis("Pacific/Auckland", 0, "4")
    decision = await world.enforcer.activate("acme", ANA)
    assert decision.reason is Reason.ADMITTED
    assert [r.subscription_version for r in world.store.decided] == ["", "4"]
    assert decision.usage is not None
    assert decision.usage.period.start == datetime(2026, 10, 31, 11, 0, tzinfo=UTC)
    # the next decision goes straight to the version it learnt
    await world.enforcer.activate("acme", BEA)
    assert [r.subscription_version for r in world.store.decided] == ["", "4", "4"]


async def test_a_subscription_that_keeps_changing_is_unavailable_not_a_wrong_period() -> None:
    world = World()
    world.store.stale_every_time = True
    with pytest.raises(StorageError) as raised:
        await world.enforcer.activate("acme", ANA)
    assert raised.value.transient
    assert len(world.store.decided) == 3
    assert not world.store.members.get(("acme", "2026-11"))


async def test_a_new_month_is_a_new_period() -> None:
    world = World()
    await world.enforcer.activate("acme", ANA)
    world.clock.set(datetime(2026, 12, 1, 0, 0, tzinfo=UTC))
    decision = await world.enforcer.activate("acme", ANA)
    assert decision.reason is Reason.ADMITTED
    assert [r.period.key for r in world.store.decided] == ["2026-11", "2026-12"]
    assert world.store.decided[1].expire_at_ms == to_ms(datetime(2027, 3, 1, tzinfo=UTC))


async def test_failure_mode_error_raises_for_the_transport_to_map() -> None:
    world = World("error")
    world.store.down = True
    with pytest.raises(StorageError):
        await world.enforcer.activate("acme", ANA)


@pytest.mark.parametrize(("mode", "allowed"), [("allow", True), ("deny", False)])
async def test_failure_modes_answer_backend_unavailable(
    mode: str, allowed: bool, tmp_path: Path
) -> None:
    world = World(mode, journal_dir=tmp_path)
    world.store.down = True
    for decision in (
        await world.enforcer.activate("acme", ANA),
        await world.enforcer.check("acme", ANA),
    ):
        assert (decision.allowed, decision.reason) == (allowed, Reason.BACKEND_UNAVAILABLE)
        assert decision.contact_key == ana_key()
        assert decision.usage is None
    batch = await world.enforcer.activate_batch("acme", [ANA, BEA])
    assert batch.usage is None
    assert [(d.allowed, d.reason) for d in batch.decisions] == [
        (allowed, Reason.BACKEND_UNAVAILABLE)
    ] * 2


async def test_usage_is_never_answered_by_a_failure_mode(tmp_path: Path) -> None:
    world = World("allow", journal_dir=tmp_path)
    world.store.down = True
    with pytest.raises(StorageError):
        await world.enforcer.usage("acme")


async def test_bad_input_never_reaches_the_store() -> None:
    world = World(batch_max=2)
    with pytest.raises(InvalidArgument, match=r"^contact.email: "):
        await world.enforcer.activate("acme", ContactFields(email="nope"))
    with pytest.raises(InvalidArgument, match=r"^workspace_id: "):
        await world.enforcer.activate("a{b}", ANA)
    with pytest.raises(InvalidArgument, match=r"^contacts: holds 3 contacts; at most 2"):
        await world.enforcer.activate_batch("acme", [ANA, BEA, CID])
    with pytest.raises(InvalidArgument, match=r"^contacts\[1\].phone: "):
        await world.enforcer.activate_batch("acme", [ANA, ContactFields(phone="12")])
    with pytest.raises(InvalidArgument, match=r"^sources: must hold at least one contact"):
        await world.identities.merge("acme", [], ANA, admin="ops")
    with pytest.raises(InvalidArgument, match=r"^contacts: holds 3 contacts; at most 2"):
        await world.identities.set_exempt("acme", [ANA, BEA, CID], exempt=True, admin="ops")
    assert world.store.decided == []
    assert world.store.merged == []


async def test_the_limit_holds_and_active_contacts_stay_served() -> None:
    world = World()
    reasons = [(await world.enforcer.activate("acme", c)).reason for c in (ANA, BEA, CID, ANA)]
    assert reasons == [
        Reason.ADMITTED,
        Reason.ADMITTED,
        Reason.LIMIT_REACHED,
        Reason.ALREADY_ACTIVE,
    ]
    denied = await world.enforcer.activate("acme", CID)
    assert not denied.allowed
    assert denied.usage is not None
    assert (denied.usage.active, denied.usage.limit, denied.usage.remaining) == (2, 2, 0)


async def test_merge_reads_the_subscription_basis_before_choosing_the_period() -> None:
    world = World()
    world.store.bases["acme"] = SubscriptionBasis(
        "UTC", to_ms(datetime(2026, 11, 10, tzinfo=UTC)), "2"
    )
    merged, usage = await world.identities.merge("acme", [BEA], ANA, admin="ops")
    assert world.store.basis_reads == 1
    assert (
        world.store.merged[0].period_key
        == f"2026-11@{int(datetime(2026, 11, 10, tzinfo=UTC).timestamp())}"
    )
    assert usage.period.key == world.store.merged[0].period_key
    assert key_text(merged.survivor) == ana_key()


async def test_usage_follows_the_clock_within_a_period() -> None:
    world = World()
    await world.enforcer.activate("acme", ANA)
    world.clock.advance(timedelta(days=3))
    usage = await world.enforcer.usage("acme")
    assert (usage.period.key, usage.active) == ("2026-11", 1)
    assert world.store.decided[-1].dry_run


def phone_key(e164: str) -> str:
    return key_text(KEYER.key(Identifier(Kind.PHONE, e164)))


async def test_a_national_number_is_keyed_in_the_region_read_for_it() -> None:
    world = World()
    world.store.bases["acme"] = SubscriptionBasis(version="3", default_region="DE")
    decision = await world.enforcer.activate("acme", ContactFields(phone="0151 1234 5678"))
    assert world.store.basis_reads == 1  # the region was unknown to this process
    assert decision.contact_key == phone_key("+4915112345678")
    # the subscription moves to Brazil: the stale answer brings the region, the number is
    # keyed again before the retry
    world.store.bases["acme"] = SubscriptionBasis(version="4", default_region="BR")
    decision = await world.enforcer.activate("acme", ContactFields(phone="(11) 98765-4321"))
    assert decision.contact_key == phone_key("+5511987654321")
    assert [r.subscription_version for r in world.store.decided] == ["3", "3", "4"]
    assert world.store.decided[-1].contacts[0].first == KEYER.key(
        Identifier(Kind.PHONE, "+5511987654321")
    )


async def test_international_numbers_never_read_the_region() -> None:
    world = World()
    await world.enforcer.activate_batch(
        "acme", [ContactFields(phone="+4915112345678"), ContactFields(phone="0049 30 123456")]
    )
    assert world.store.basis_reads == 0


async def test_past_the_bound_only_the_least_recent_workspace_bases_are_forgotten() -> None:
    store = MemoryStore()
    periods = Periods(store, retention_periods=2, cache_max=3)
    for n in range(5):
        store.bases[f"w{n}"] = SubscriptionBasis("Europe/Berlin", 0, "1")
        await periods.refresh(f"w{n}")
    # the three most recent are kept: their next decisions need no second read
    assert [periods.basis(f"w{n}").version for n in range(5)] == ["", "", "1", "1", "1"]


def test_past_the_bound_only_the_least_recently_keyed_contacts_are_keyed_again() -> None:
    reader = ContactReader(KEYER, batch_max=10, cache_max=3)
    c0, c1, c2 = (reader.one(ContactFields(id=f"c{n}")) for n in range(3))
    assert reader.one(ContactFields(id="c0")) is c0  # now the most recent
    reader.one(ContactFields(id="c3"))
    assert reader.one(ContactFields(id="c0")) is c0
    assert reader.one(ContactFields(id="c2")) is c2
    assert reader.one(ContactFields(id="c1")) is not c1

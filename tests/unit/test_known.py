"""The record of contacts known counted this period: what it records, its bound, its periods."""

from __future__ import annotations

import gc

from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Reason
from sidecar.domain.ports import ContactOutcome
from sidecar.usecases.known import Known, KnownContacts

EMAIL, PHONE, VISITOR, OTHER = b"e" * 14, b"p" * 14, b"v" * 14, b"o" * 14


def test_a_counted_contact_is_known_by_its_identity_and_every_key_it_came_with() -> None:
    known = KnownContacts(100)
    contact = KeyedContact((EMAIL, PHONE), VISITOR, "sms")
    known.remember_outcome(
        "acme", "2026-11", contact, ContactOutcome(Reason.ADMITTED, OTHER), False
    )
    for key in (OTHER, EMAIL, PHONE, VISITOR):
        assert known.lookup("acme", "2026-11", key) == Known("2026-11", False, OTHER)
    # later with its phone alone: known, under the identity it is counted under
    found = known.lookup_contact("acme", "2026-11", KeyedContact((PHONE,)))
    assert found is not None
    assert found.identity == OTHER
    assert known.lookup("other-workspace", "2026-11", EMAIL) is None


def test_only_what_is_counted_is_known() -> None:
    known = KnownContacts(100)
    contact = KeyedContact((EMAIL,))
    for outcome, dry_run in (
        (ContactOutcome(Reason.LIMIT_REACHED, EMAIL), False),
        (ContactOutcome(Reason.LIMIT_REACHED, EMAIL, shadowed=True), False),
        (ContactOutcome(Reason.WITHIN_LIMIT, EMAIL), True),
        (ContactOutcome(Reason.TRIAL_STARTED, EMAIL), True),  # a dry run starts nothing
    ):
        known.remember_outcome("acme", "2026-11", contact, outcome, dry_run)
    assert len(known) == 0
    known.remember_outcome("acme", "2026-11", contact, ContactOutcome(Reason.EXEMPT, EMAIL), True)
    assert known.lookup("acme", "2026-11", EMAIL) == Known("2026-11", True, EMAIL)


def test_a_conflict_records_the_identity_and_the_first_key_only() -> None:
    known = KnownContacts(100)
    contact = KeyedContact((EMAIL, PHONE))
    outcome = ContactOutcome(Reason.ALREADY_ACTIVE, OTHER, conflict=True)
    known.remember_outcome("acme", "2026-11", contact, outcome, False)
    assert known.lookup("acme", "2026-11", EMAIL) is not None
    assert known.lookup("acme", "2026-11", PHONE) is None  # it leads to another identity


def test_the_record_is_bounded_and_drops_the_least_recently_used() -> None:
    known = KnownContacts(3)
    keys = [bytes([n]) * 14 for n in range(4)]
    for key in keys[:3]:
        known.remember("acme", key, Known("2026-11", False, key))
    assert known.lookup("acme", "2026-11", keys[0]) is not None  # now the most recent
    known.remember("acme", keys[3], Known("2026-11", False, keys[3]))
    assert len(known) == 3
    assert known.lookup("acme", "2026-11", keys[1]) is None
    assert all(known.lookup("acme", "2026-11", k) for k in (keys[0], keys[2], keys[3]))


def test_a_new_period_knows_nobody() -> None:
    known = KnownContacts(10)
    known.remember("acme", EMAIL, Known("2026-11", False, EMAIL))
    assert known.lookup("acme", "2026-12", EMAIL) is None
    assert len(known) == 0  # dropped, not kept for later
    assert known.lookup("acme", "2026-11", EMAIL) is None


def test_capacity_zero_keeps_nothing() -> None:
    known = KnownContacts(0)
    known.remember("acme", EMAIL, Known("2026-11", False, EMAIL))
    known.remember_outcome(
        "acme", "2026-11", KeyedContact((EMAIL,)), ContactOutcome(Reason.ADMITTED, EMAIL), False
    )
    assert len(known) == 0


def test_the_collector_stops_tracking_the_records_entries() -> None:
    # a full collection would otherwise walk every one of up to MAC_KNOWN_CONTACTS_MAX entries
    known = KnownContacts(5000)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(5000):
        key = n.to_bytes(14, "big")
        outcome = ContactOutcome(Reason.ADMITTED if n % 2 else Reason.EXEMPT, key)
        known.remember_outcome("acme", "2026-11", KeyedContact((key,)), outcome, False)
    gc.collect()
    assert len(gc.get_objects()) - before < 100  # not one object per entry
    counted = known.lookup("acme", "2026-11", (1).to_bytes(14, "big"))
    exempt = known.lookup("acme", "2026-11", (2).to_bytes(14, "big"))
    assert counted is not None
    assert counted.reason is Reason.ALREADY_ACTIVE
    assert exempt is not None
    assert exempt.reason is Reason.EXEMPT

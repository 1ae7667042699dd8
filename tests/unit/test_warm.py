"""The warm path over an in-memory record: fresh for its seconds and never past the reply's
period, off at zero, and forgetting a workspace whose identities moved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sidecar.domain.clock import ManualClock
from sidecar.domain.contact import ContactFields, ContactKeyer, key_text
from sidecar.domain.decision import Reason, Usage
from sidecar.domain.ports import ContactOutcome
from sidecar.usecases.contacts import ContactReader
from sidecar.usecases.known import KnownContacts
from sidecar.usecases.periods import Periods
from sidecar.usecases.warm import WarmPath
from tests.support.constants import SECRET
from tests.support.memory_store import MemoryStore

ANA = ContactFields(email="ana@example.com")


class Warm:
    """A warm path that knows ANA counted in the current period of ``acme``."""

    def __init__(self, seconds: float, now: datetime) -> None:
        self.clock = ManualClock(now)
        self.known = KnownContacts(100)
        contacts = ContactReader(ContactKeyer(SECRET.encode()), 10)
        periods = Periods(MemoryStore(), retention_periods=2)
        self.path = WarmPath(self.known, contacts, periods, self.clock, seconds)
        self.period = periods.current("acme", now).period
        self.ana = contacts.one(ANA)
        outcome = ContactOutcome(Reason.ADMITTED, self.ana.first)
        self.known.remember_outcome("acme", self.period.key, self.ana, outcome, dry_run=False)

    def reply(self, identity_version: int = 0) -> Usage:
        usage = Usage(self.period, 1, 10, "starter")
        self.path.learn("acme", self.clock.now(), usage, identity_version)
        return usage


def test_a_known_contact_is_answered_while_the_reply_is_fresh() -> None:
    warm = Warm(1.0, datetime(2026, 11, 15, 12, 0, tzinfo=UTC))
    assert warm.path.answer("acme", ANA) is None  # no reply yet
    usage = warm.reply()
    answer = warm.path.answer("acme", ANA)
    assert answer is not None
    assert (answer.allowed, answer.reason, answer.from_local_record) == (
        True,
        Reason.ALREADY_ACTIVE,
        True,
    )
    assert (answer.contact_key, answer.usage) == (key_text(warm.ana.first), usage)
    assert warm.path.answer("acme", ContactFields(email="bea@example.com")) is None
    warm.clock.advance(timedelta(seconds=1))
    assert warm.path.answer("acme", ANA) is None


def test_a_reply_is_never_fresh_past_its_period() -> None:
    warm = Warm(60.0, datetime(2026, 11, 30, 23, 59, 59, 500_000, tzinfo=UTC))
    warm.reply()
    warm.clock.set(datetime(2026, 12, 1, 0, 0, 0, 100_000, tzinfo=UTC))
    assert warm.path.answer("acme", ANA) is None


def test_zero_seconds_is_off() -> None:
    warm = Warm(0.0, datetime(2026, 11, 15, 12, 0, tzinfo=UTC))
    warm.reply()
    assert warm.path.answer("acme", ANA) is None


def test_a_moved_identity_version_forgets_the_workspace_s_contacts() -> None:
    warm = Warm(60.0, datetime(2026, 11, 15, 12, 0, tzinfo=UTC))
    warm.reply(identity_version=1)
    assert warm.path.answer("acme", ANA) is not None
    warm.reply(identity_version=2)  # a merge or an exemption since
    assert warm.path.answer("acme", ANA) is None
    assert len(warm.known) == 0

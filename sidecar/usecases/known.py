"""The contacts this process has seen counted in their workspace's current period: a bounded,
least-recently-used record that answers for them while storage is unreachable."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import NamedTuple

from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Reason
from sidecar.domain.ports import ContactOutcome

# What a decision says about a contact that makes it safe to serve again without storage.
_COUNTED = frozenset((Reason.ALREADY_ACTIVE, Reason.ADMITTED, Reason.TRIAL_STARTED, Reason.EXEMPT))
# A dry run counts nobody: only what it found already settled is known.
_SETTLED = frozenset((Reason.ALREADY_ACTIVE, Reason.EXEMPT))


class Known(NamedTuple):
    """What the record holds for a key: the period it is settled in, whether it is exempt
    (else it is counted) and the identity key it is counted under.

    Its fields are a str, a bool and bytes only: stored as a plain tuple of them, an entry is
    one the garbage collector stops tracking (an enum member would keep it tracked, and every
    full collection would walk the whole record)."""

    period_key: str
    exempt: bool
    identity: bytes

    @property
    def reason(self) -> Reason:
        """What to answer for the key: ``EXEMPT`` or ``ALREADY_ACTIVE``."""
        return Reason.EXEMPT if self.exempt else Reason.ALREADY_ACTIVE


class KnownContacts:
    """Identity and identifier keys per (workspace, period key), at most ``capacity`` in all.

    One ordered dict holds every entry, keyed by ``(workspace_id, key)`` with a ``Known``'s
    fields as a plain tuple for its value (the collector stops tracking a plain tuple of
    atoms, not a named one): a lookup is one dict probe, a hit moves the entry
    to the recent end, and an insertion beyond ``capacity`` drops the least recently used
    entry. An entry of an earlier period is never answered; it is dropped when it is looked
    up, or when it reaches the old end. ``capacity`` 0 keeps nothing.

    It is the LRU of ``LruCache`` with two steps that type does not offer: a lookup that
    drops an entry of an earlier period in the same probe, and ``forget``'s scan by
    workspace; and its lookups run for every key of every warm answer, one call less each.

    :param capacity: the most keys kept (``MAC_KNOWN_CONTACTS_MAX``).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, bytes], tuple[str, bool, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, workspace_id: str, key: bytes, known: Known) -> None:
        """Record that ``key`` is settled in ``known.period_key``."""
        if self.capacity:
            self._put(workspace_id, key, tuple(known))  # type: ignore[arg-type]

    def _put(self, workspace_id: str, key: bytes, fields: tuple[str, bool, bytes]) -> None:
        entry = (workspace_id, key)
        entries = self._entries
        if entry in entries:
            entries.move_to_end(entry)
        elif len(entries) >= self.capacity:
            entries.popitem(last=False)
        entries[entry] = fields

    def remember_outcome(
        self,
        workspace_id: str,
        period_key: str,
        contact: KeyedContact,
        outcome: ContactOutcome,
        dry_run: bool,
    ) -> None:
        """Record a decided contact under its identity key and the keys it arrived with, when
        the decision says it is counted in the period (or exempt).

        A request whose identifiers belonged to two identities is recorded under its identity
        and its highest-precedence key only: its other keys lead to another identity, which
        may not be counted. A dry run is recorded under the identity alone: it links nothing.
        """
        if not self.capacity or outcome.shadowed:
            return
        reason = outcome.reason
        if reason not in (_SETTLED if dry_run else _COUNTED):
            return
        identity = outcome.identity
        fields = (period_key, reason is Reason.EXEMPT, identity)  # a Known's, as stored
        self._put(workspace_id, identity, fields)
        if dry_run:
            return  # a dry run links nothing: the request's other keys may lead elsewhere
        keys: Iterable[bytes]
        if outcome.conflict:
            keys = (contact.first,)
        else:
            keys = (*contact.primaries, contact.visitor) if contact.visitor else contact.primaries
        for key in keys:
            if key != identity:
                self._put(workspace_id, key, fields)

    def lookup(self, workspace_id: str, period_key: str, key: bytes) -> Known | None:
        """What the record knows of ``key`` in the period, or ``None``."""
        found = self._entry(workspace_id, period_key, key)
        return Known(*found) if found is not None else None

    def _entry(
        self, workspace_id: str, period_key: str, key: bytes
    ) -> tuple[str, bool, bytes] | None:
        # the stored fields of a ``lookup``: an entry of another period is dropped
        entry = (workspace_id, key)
        found = self._entries.get(entry)
        if found is None:
            return None
        if found[0] != period_key:
            del self._entries[entry]
            return None
        self._entries.move_to_end(entry)
        return found

    def forget(self, workspace_id: str) -> None:
        """Drop everything known of the workspace's contacts (a merge or an exemption changed
        who is who); a scan of the record, for an event operators cause."""
        for entry in [e for e in self._entries if e[0] == workspace_id]:
            del self._entries[entry]

    def lookup_all(self, workspace_id: str, period_key: str, contact: KeyedContact) -> Known | None:
        """What the record knows of the contact when every one of its keys is known in the
        period, under one identity; ``None`` otherwise."""
        if not self._entries:
            return None
        found: tuple[str, bool, bytes] | None = None
        keys = (*contact.primaries, contact.visitor) if contact.visitor else contact.primaries
        for key in keys:
            entry = self._entry(workspace_id, period_key, key)
            if entry is None or (found is not None and entry[2] != found[2]):
                return None
            found = entry
        return Known(*found) if found is not None else None

    def lookup_contact(
        self, workspace_id: str, period_key: str, contact: KeyedContact
    ) -> Known | None:
        """``lookup`` of the first of the contact's keys that the record knows."""
        if not self._entries:
            return None
        for key in contact.primaries:
            found = self.lookup(workspace_id, period_key, key)
            if found is not None:
                return found
        if contact.visitor:
            return self.lookup(workspace_id, period_key, contact.visitor)
        return None

"""The contacts of a request: validated, keyed, and bounded in number."""

from __future__ import annotations

from collections.abc import Sequence

from sidecar.domain.addresses import is_national
from sidecar.domain.cache import LruCache
from sidecar.domain.contact import ContactFields, ContactKeyer, KeyedContact
from sidecar.domain.errors import InvalidArgument

# Recent contacts kept keyed: the same contact arrives with every message of a conversation.
KEYED_CACHE_MAX = 16_384


class ContactReader:
    """Turns the contacts of requests into keyed contacts.

    :param keyer: turns identifiers into counting keys.
    :param batch_max: the most contacts one request may carry.
    :param cache_max: the most contacts ``one`` keeps keyed.
    """

    def __init__(
        self, keyer: ContactKeyer, batch_max: int, cache_max: int = KEYED_CACHE_MAX
    ) -> None:
        self._keyer = keyer
        self.batch_max = batch_max
        self._keyed: LruCache[tuple[ContactFields, str], KeyedContact] = LruCache(cache_max)

    def one(self, contact: ContactFields, field: str = "contact", region: str = "") -> KeyedContact:
        """Validate and key one contact.

        :param region: the region national phone numbers are read in ("" refuses them).
        :raise InvalidArgument: naming the first offending field.
        """
        asked = (contact, region)
        cached = self._keyed.get(asked)
        if cached is None:
            cached = self._keyer.keyed(contact, field, region)  # a refused one is not kept
            self._keyed.put(asked, cached)
        return cached

    def many(
        self, contacts: Sequence[ContactFields], field: str, region: str = ""
    ) -> list[KeyedContact]:
        """Validate and key the contacts of a repeated request field, in order; their number
        is checked once, before anything else is done for the request (``check_count``).

        :raise InvalidArgument: for any invalid contact.
        """
        keyed = self._keyer.keyed
        try:
            return [keyed(c, field, region) for c in contacts]
        except InvalidArgument:
            # named by its place in the request (not formatted for the valid ones): the first
            # invalid contact is found again and its error raised
            for i, contact in enumerate(contacts):
                keyed(contact, f"{field}[{i}]", region)
            raise

    def check_count(self, contacts: Sequence[ContactFields], field: str) -> None:
        """Refuse a repeated request field with no contact or more than ``batch_max``: the
        one check of a request's size in the use cases, made before any other step (the
        transport also refuses a request over the bound before parsing it, so that none is
        ever built).

        :raise InvalidArgument: naming the field and the bound.
        """
        if not contacts:
            raise InvalidArgument(field, "must hold at least one contact")
        if len(contacts) > self.batch_max:
            raise InvalidArgument(
                field, f"holds {len(contacts)} contacts; at most {self.batch_max} allowed"
            )


def has_national_phone(contacts: Sequence[ContactFields]) -> bool:
    """Whether any contact's phone number lacks a country code, so that keying it needs the
    workspace's default region."""
    return any(c.phone and is_national(c.phone) for c in contacts)

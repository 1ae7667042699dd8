"""Contacts: validation and normalization of identifiers, and the keyed hashes they count under.

Emails and phone numbers never leave this module raw: each identifier becomes a 14-byte
HMAC-SHA256 digest keyed with the identity secret, so counting stays exact while a Redis dump
reveals no personal data. Every kind goes through the same digest so that each counted contact
costs the same few bytes in Redis whatever identified it.
"""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

from sidecar.domain.addresses import normalize_email, normalize_phone
from sidecar.domain.errors import InvalidArgument

WORKSPACE_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9_.-]{0,31}")
_OPAQUE_MAX = 256
_CHANNEL_INPUT_MAX = 64
# The most bytes a valid Contact can take on the wire: each field at its longest in 4-byte
# UTF-8 characters, with tags and lengths. The gRPC receive limit is this per contact.
CONTACT_MAX_BYTES = 4096
KEY_BYTES = 14


class Kind(Enum):
    """The kinds of identifier, in order of precedence."""

    ID = "i"
    EMAIL = "e"
    PHONE = "p"
    VISITOR = "v"


class Identifier(NamedTuple):
    """One normalized identifier of a contact (a tuple: several are built per contact)."""

    kind: Kind
    value: str


# What each kind's digest is taken over: this prefix, a colon, then the value.
_PREFIX = {kind: f"{kind.value}:".encode() for kind in Kind}
_ID, _EMAIL = _PREFIX[Kind.ID], _PREFIX[Kind.EMAIL]


class ContactFields(NamedTuple):
    """A contact as a request carries it, before validation; empty strings are "not given"."""

    id: str = ""
    email: str = ""
    phone: str = ""
    channel: str = ""
    visitor_id: str = ""


@dataclass(slots=True)
class KeyedContact:
    """A validated contact as storage takes it: the keys of its primary identifiers in
    precedence order (id, email, phone), and its visitor's key (``b""`` for none).

    Not frozen: one is built for every contact on the decision path, where a frozen dataclass
    costs about four times as much to construct. Treat it as a value all the same.
    """

    primaries: tuple[bytes, ...]
    visitor: bytes = b""
    channel: str = ""  # the channel of the conversation, lower-cased ("" when not given)

    @property
    def first(self) -> bytes:
        """The key of its highest-precedence identifier."""
        return self.primaries[0] if self.primaries else self.visitor


def validate_workspace_id(value: str, field: str = "workspace_id") -> str:
    """Return ``value`` when it is a workspace id (1-64 of ``[A-Za-z0-9._-]``)."""
    if not value:
        raise InvalidArgument(field, "is required")
    if not WORKSPACE_ID.fullmatch(value):
        raise InvalidArgument(field, "must be 1 to 64 characters of A-Z a-z 0-9 . _ -")
    return value


def _opaque(value: str, field: str) -> str:
    if len(value) > _OPAQUE_MAX:
        raise InvalidArgument(field, f"must be at most {_OPAQUE_MAX} characters")
    if not value.isprintable():
        raise InvalidArgument(field, "must not contain control characters")
    return value


def identifiers(
    id: str = "",
    email: str = "",
    phone: str = "",
    channel: str = "",
    visitor_id: str = "",
    field: str = "contact",
    region: str = "",
) -> tuple[Identifier, ...]:
    """Validate a contact's fields and return its identifiers, highest precedence first.

    Empty strings mean "not given". At least one of id, email, phone, or channel together
    with visitor_id is required. ``channel`` beside a primary identifier is the channel the
    conversation came on (context, not an identifier); with ``visitor_id`` alone it names the
    channel of an unidentified visitor.

    :param field: the request field the contact came from, used to name errors.
    :param region: the region national phone numbers are read in ("" refuses them).
    :raise InvalidArgument: naming the first offending field.
    """
    found: list[Identifier] = []
    if id:
        found.append(Identifier(Kind.ID, _opaque(id, f"{field}.id")))
    if email:
        found.append(Identifier(Kind.EMAIL, normalize_email(email, f"{field}.email")))
    if phone:
        found.append(Identifier(Kind.PHONE, normalize_phone(phone, f"{field}.phone", region)))
    if visitor_id and not channel:
        raise InvalidArgument(f"{field}.channel", "is required with visitor_id")
    if channel:
        name = channel_name(channel, f"{field}.channel")
        if visitor_id:
            visitor = _opaque(visitor_id, f"{field}.visitor_id")
            found.append(Identifier(Kind.VISITOR, f"{name}\x00{visitor}"))
        elif not found:
            raise InvalidArgument(
                f"{field}.visitor_id",
                "is required with channel when no id, email or phone is given",
            )
    if not found:
        raise InvalidArgument(field, "needs an id, email, phone, or channel with visitor_id")
    return tuple(found)


def channel_name(value: str, field: str = "contact.channel") -> str:
    """A channel's name, lower-cased: 1 to 32 of ``a-z 0-9 _ . -`` (``sms``, ``whatsapp``)."""
    name = value.strip().lower() if len(value) <= _CHANNEL_INPUT_MAX else ""
    if not _CHANNEL.fullmatch(name):
        raise InvalidArgument(field, "must be 1 to 32 characters of a-z 0-9 _ . - (e.g. sms)")
    return name


class ContactKeyer:
    """Turns identifiers into the opaque keys contacts are counted under.

    :param secret: the identity secret; changing it changes every key, so every contact
        would be counted again.
    """

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the identity secret must be at least 16 bytes")
        # keyed once: each digest starts from a copy of it instead of keying again. The copy
        # is of the C object behind hmac's Python wrapper where there is one (OpenSSL's):
        # the wrapper's copy builds a Python object on every digest, half its cost.
        mac = hmac.new(secret, digestmod="sha256")
        self._mac: Any = getattr(mac, "_hmac", None) or mac

    def key(self, identifier: Identifier) -> bytes:
        """The 14-byte keyed digest of one identifier (112 bits: collisions are out of reach)."""
        return self._digest(_PREFIX[identifier.kind], identifier.value)

    def _digest(self, prefix: bytes, value: str) -> bytes:
        mac = self._mac.copy()
        mac.update(prefix + value.encode())
        digest: bytes = mac.digest()
        return digest[:KEY_BYTES]

    def keyed(
        self, contact: ContactFields, field: str = "contact", region: str = ""
    ) -> KeyedContact:
        """Validate a contact and key its identifiers.

        :param field: the request field the contact came from, used to name errors.
        :param region: the region national phone numbers are read in ("" refuses them).
        :raise InvalidArgument: naming the first offending field.
        """
        id_, email, phone, channel, visitor_id = contact
        if not (phone or visitor_id) and bool(id_) != bool(email):
            # the common contact, one id or one email (and maybe its channel), without the
            # general path's lists; an invalid one takes that path for its error
            try:
                if email:
                    digest = self._digest(_EMAIL, normalize_email(email))
                else:
                    digest = self._digest(_ID, _opaque(id_, ""))
                name = channel_name(channel) if channel else ""
            except InvalidArgument:
                pass
            else:
                return KeyedContact((digest,), b"", name)
        primaries: list[bytes] = []
        visitor = b""
        for identifier in identifiers(*contact, field=field, region=region):
            if identifier.kind is Kind.VISITOR:
                visitor = self.key(identifier)
            else:
                primaries.append(self.key(identifier))
        channel = contact.channel.strip().lower() if contact.channel else ""
        return KeyedContact(tuple(primaries), visitor, channel)


def key_text(key: bytes) -> str:
    """The printable form of a counting key, as the API shows it."""
    return key.hex()

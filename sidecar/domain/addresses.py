"""Email addresses and phone numbers in one form each, so that one person written two ways is
one contact: phones in E.164 (libphonenumber's rules, through ``phonenumbers``), emails in
NFKC, trimmed and lower-cased, checked for syntax (``email-validator``, no DNS).

Normalizing is costly next to the rest of a decision (15-25 µs) and the same addresses come
back all month, so recent results are cached.
"""

from __future__ import annotations

import functools
import re
import unicodedata

import phonenumbers
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from sidecar.domain.errors import InvalidArgument

EMAIL_MAX = 254
_EMAIL_INPUT_MAX = 320
_PHONE_INPUT_MAX = 64
_CACHE = 65_536
# Control (NUL, ...), format (zero-width space, BOM, direction marks) and separators that are
# not spaces: invisible, and never part of an address someone typed.
_INVISIBLE = frozenset(("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"))
REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
# The everyday address, already in its one form: an ASCII dot-atom, a domain of letters, digits
# and hyphens under an alphabetic top-level domain. It is accepted as it is, without the
# 20 µs of email-validator; anything else goes to email-validator, the authority on the
# rest (a property test checks the two agree on what this matches).
_PLAIN_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
# A special-use domain name (RFC 6761: localhost, test, ...), or a name under one.
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)
_UNDER_SPECIAL_USE = tuple(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)
# A "+", then digits and the separators people write between them; no letters (vanity
# numbers, "ext."), no second "+".
_PHONE_TEXT = re.compile(r"\+?[\s(]*[0-9][0-9\s().\-/]*")


def normalize_email(value: str, field: str = "contact.email") -> str:
    """The one form of an email address: NFKC (fullwidth letters become ASCII), trimmed,
    lower-cased.

    :raise InvalidArgument: for control or invisible characters, a ``mailto:`` prefix, or
        anything that is not an address.
    """
    if len(value) > _EMAIL_INPUT_MAX:
        raise InvalidArgument(field, f"must be at most {EMAIL_MAX} characters")
    plain = value.strip().lower()
    if plain.isascii() and is_plain_email(plain):
        return plain
    try:
        return _email(value)
    except ValueError as exc:
        raise InvalidArgument(field, str(exc)) from None


@functools.lru_cache(maxsize=_CACHE)
def _email(value: str) -> str:
    text = unicodedata.normalize("NFKC", value).strip()
    if any(unicodedata.category(c) in _INVISIBLE for c in text):
        raise ValueError("must not contain control or invisible characters")
    if text[:7].lower() == "mailto:":
        raise ValueError("must be the address alone, without mailto:")
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        raise ValueError("is not an email address") from None
    email = checked.normalized.lower()
    if len(email) > EMAIL_MAX:
        raise ValueError(f"must be at most {EMAIL_MAX} characters")
    return email


def is_plain_email(text: str) -> bool:
    """Whether ``text`` is an everyday ASCII address already in its one form, which
    email-validator would accept unchanged."""
    if len(text) > EMAIL_MAX or not _PLAIN_EMAIL.fullmatch(text):
        return False
    local, _, domain = text.rpartition("@")
    if len(local) > 64 or len(domain) > 253 or "--" in domain:  # "--": IDNA's rules apply
        return False
    return domain not in _SPECIAL_USE and not domain.endswith(_UNDER_SPECIAL_USE)


def is_national(phone: str) -> bool:
    """Whether a phone number is written without a country code (no ``+``, no ``00``)."""
    text = phone.strip()
    return bool(text) and not text.startswith(("+", "00"))


def normalize_phone(value: str, field: str = "contact.phone", region: str = "") -> str:
    """The E.164 form of a phone number: ``+`` and country code, then the national number
    without its trunk prefix. ``00`` counts as ``+``; separators, ``(0)`` and other notations of
    one number give one form.

    :param region: the ISO 3166 region national numbers (no ``+`` or ``00``) are read in; ""
        refuses them.
    :raise InvalidArgument: for a national number without a region, or a number that cannot
        exist (too short or too long for its country).
    """
    if len(value) > _PHONE_INPUT_MAX:
        raise InvalidArgument(field, f"must be at most {_PHONE_INPUT_MAX} characters")
    try:
        return _phone(value, region)
    except ValueError as exc:
        raise InvalidArgument(field, str(exc)) from None


@functools.lru_cache(maxsize=_CACHE)
def _phone(value: str, region: str) -> str:
    text = value.strip()
    if not text:
        raise ValueError("is not a phone number")
    if text.startswith("00"):
        text = "+" + text[2:]
    if not _PHONE_TEXT.fullmatch(text):
        raise ValueError("is not a phone number (digits, with + and the country code)")
    if not text.startswith("+") and not region:
        raise ValueError(
            "needs its country code (+49 151 ... or 0049 151 ...), "
            "or a default_region in the workspace's subscription"
        )
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        raise ValueError("is not a phone number") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("is not a possible phone number (too short or too long for its country)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def validate_region(value: str, field: str = "default_region") -> str:
    """Return ``value`` upper-cased when it is a region phone numbers are known for ("" is
    none)."""
    region = value.strip().upper()
    if region and region not in REGIONS:
        raise InvalidArgument(field, "must be an ISO 3166 region code like DE or BR")
    return region

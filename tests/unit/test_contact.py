"""Identifier validation, normalization and keyed hashing."""

from __future__ import annotations

import hashlib
import hmac

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.domain.addresses import normalize_email, normalize_phone, validate_region
from sidecar.domain.contact import (
    ContactKeyer,
    Identifier,
    Kind,
    identifiers,
    validate_workspace_id,
)
from sidecar.domain.errors import InvalidArgument

KEYER = ContactKeyer(b"unit-test-secret-0123456789")


@pytest.mark.parametrize(
    "raw",
    [
        "Ana@Example.COM",
        "  ana@example.com\t",
        "ANA@EXAMPLE.COM",
        "".join(chr(ord(c) + 0xFEE0) for c in "ana@example.com"),  # fullwidth: NFKC to ASCII
        "Ana@example.com\u3000",  # an ideographic space is still space
    ],
)
def test_email_is_one_form(raw: str) -> None:
    assert normalize_email(raw) == "ana@example.com"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("ana", "is not an email address"),
        ("ana@", "is not an email address"),
        ("@example.com", "is not an email address"),
        ("ana@example", "is not an email address"),
        ("a b@c.de", "is not an email address"),
        ("a@b@c.de", "is not an email address"),
        ("ana\u200b@example.com", "must not contain control or invisible characters"),
        ("\ufeffana@example.com", "must not contain control or invisible characters"),
        ("ana@example.com\x00", "must not contain control or invisible characters"),
        ("ana\x07@example.com", "must not contain control or invisible characters"),
        ("mailto:ana@example.com", "must be the address alone, without mailto:"),
        ("MAILTO:ana@example.com", "must be the address alone, without mailto:"),
        ("a" * 250 + "@example.com", "is not an email address"),
        ("a" * 400 + "@example.com", "must be at most 254 characters"),
    ],
)
def test_email_that_is_not_an_address_is_refused(raw: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_email(raw)
    assert (caught.value.field, caught.value.message) == ("contact.email", message)


@pytest.mark.parametrize(
    ("raw", "region"),
    [
        ("+49 151 1234 5678", ""),
        ("+49-151-12345678", ""),
        ("0049 (151) 1234.5678", ""),
        ("+49 (0)151 12345678", ""),
        ("+49/151/12345678", ""),
        ("0151 1234 5678", "DE"),
        ("(0151) 12345678", "DE"),
        ("+49 151 12345678", "BR"),  # a country code wins over the region
    ],
)
def test_notations_of_one_number_give_one_form(raw: str, region: str) -> None:
    assert normalize_phone(raw, region=region) == "+4915112345678"


@pytest.mark.parametrize("raw", ["0151 1234 5678", "98765-4321", "4915112345678"])
def test_a_national_number_needs_a_region(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_phone(raw, "contacts[2].phone")
    assert caught.value.field == "contacts[2].phone"
    assert "country code" in caught.value.message
    assert "default_region" in caught.value.message


def test_a_national_number_reads_in_its_region() -> None:
    assert normalize_phone("(11) 98765-4321", region="BR") == "+5511987654321"
    assert normalize_phone("98765-4321", region="BR") != "+987654321"


@pytest.mark.parametrize(
    "raw",
    ["", "+", "+1234567890123456", "+49 151 abc", "++491511234", "+1 202", "+49 1", "call me"],
)
def test_phone_that_is_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_phone(raw, "contacts[3].phone")
    assert caught.value.field == "contacts[3].phone"


REGIONS = sorted(r for r in phonenumbers.SUPPORTED_REGIONS if phonenumbers.example_number(r))


@given(
    region=st.sampled_from(REGIONS),
    separators=st.lists(st.sampled_from([" ", "-", ".", "/", "  "]), max_size=8),
    notation=st.sampled_from(["e164", "plus", "double-zero", "national"]),
)
def test_every_notation_of_a_number_gives_its_e164(
    region: str, separators: list[str], notation: str
) -> None:
    number = phonenumbers.example_number(region)
    assert number is not None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if notation == "national":
        written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    elif notation == "e164":
        written = e164
    else:
        written = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        if notation == "double-zero":
            written = "00" + written[1:]
    head, tail = written[:3], written[3:]  # keep "+49", "004" and a trunk "0" whole
    spaced = head + "".join(
        c + (separators[i] if i < len(separators) and c.isdigit() else "")
        for i, c in enumerate(tail)
    )
    assert normalize_phone(spaced, region=region if notation == "national" else "") == e164


@given(st.text(max_size=80))
def test_any_text_is_a_phone_or_a_named_refusal(text: str) -> None:
    try:
        found = normalize_phone(text, region="DE")
    except InvalidArgument as exc:
        field = exc.field
    else:
        field = "contact.phone"
        assert found.startswith("+")
        assert found[1:].isdigit()
    assert field == "contact.phone"


@given(st.text(max_size=80))
def test_any_text_is_an_email_or_a_named_refusal(text: str) -> None:
    try:
        found = normalize_email(text)
    except InvalidArgument as exc:
        field = exc.field
    else:
        field = "contact.email"
        assert found == found.strip().lower()
        assert normalize_email(found) == found
    assert field == "contact.email"


def test_regions_are_iso_codes_phone_numbers_know() -> None:
    assert validate_region("de") == "DE"
    assert validate_region("") == ""
    with pytest.raises(InvalidArgument) as caught:
        validate_region("Germany")
    assert caught.value.field == "default_region"


@pytest.mark.parametrize("ws", ["a", "acme", "Acme-Corp_1.eu", "x" * 64])
def test_valid_workspace_ids(ws: str) -> None:
    assert validate_workspace_id(ws) == ws


@pytest.mark.parametrize("ws", ["", "x" * 65, "a b", "a{b}", "a:b", "é"])
def test_invalid_workspace_ids(ws: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_workspace_id(ws)
    assert caught.value.field == "workspace_id"


def test_a_channel_beside_an_identifier_is_context() -> None:
    found = identifiers(email="ana@example.com", channel="WhatsApp")
    assert [i.kind for i in found] == [Kind.EMAIL]
    assert found == identifiers(email="ana@example.com")


def test_a_channel_alone_or_a_visitor_without_channel_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        identifiers(channel="sms")
    assert caught.value.field == "contact.visitor_id"
    with pytest.raises(InvalidArgument) as caught:
        identifiers(email="ana@example.com", visitor_id="v9")
    assert caught.value.field == "contact.channel"
    with pytest.raises(InvalidArgument) as caught:
        identifiers(email="ana@example.com", channel="not a channel!")
    assert caught.value.field == "contact.channel"


def test_identifiers_come_in_precedence_order() -> None:
    found = identifiers(
        id="crm-1", email="A@B.io", phone="+1 555 0100 999", channel="SMS", visitor_id="v9"
    )
    assert [i.kind for i in found] == [Kind.ID, Kind.EMAIL, Kind.PHONE, Kind.VISITOR]
    assert found[1].value == "a@b.io"
    assert found[2].value == "+15550100999"
    assert found[3].value == "sms\x00v9"


def test_a_contact_needs_something_to_identify_it() -> None:
    with pytest.raises(InvalidArgument) as caught:
        identifiers(field="contacts[0]")
    assert caught.value.field == "contacts[0]"


def test_keys_are_16_bytes_and_depend_on_kind_value_and_secret() -> None:
    email = Identifier(Kind.EMAIL, "ana@example.com")
    key = KEYER.key(email)
    assert len(key) == 14
    assert KEYER.key(Identifier(Kind.EMAIL, "ana@example.com")) == key
    assert KEYER.key(Identifier(Kind.ID, "ana@example.com")) != key
    assert KEYER.key(Identifier(Kind.EMAIL, "bob@example.com")) != key
    assert ContactKeyer(b"another-secret-0123456789").key(email) != key


def test_a_key_is_the_hmac_sha256_of_kind_and_value_so_stored_counts_stay_valid() -> None:
    # every key in Redis was made this way: a different digest would count everyone again
    secret = b"pinned-secret-0123456789abcdef"
    for kind, value in [(Kind.EMAIL, "ana@example.com"), (Kind.PHONE, "+5511987654321")]:
        expected = hmac.new(secret, f"{kind.value}:{value}".encode(), hashlib.sha256).digest()
        assert ContactKeyer(secret).key(Identifier(kind, value)) == expected[:14]


def test_visitor_keys_differ_by_channel() -> None:
    sms = identifiers(channel="sms", visitor_id="42")[0]
    chat = identifiers(channel="livechat", visitor_id="42")[0]
    assert KEYER.key(sms) != KEYER.key(chat)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        ContactKeyer(b"short")


@settings(max_examples=500)
@given(
    st.from_regex(
        r"[a-z0-9._%+!#'`{}|~^=?*/&$-]{1,30}@[a-z0-9.-]{1,30}\.[a-z]{2,8}", fullmatch=True
    )
)
def test_the_plain_address_shortcut_agrees_with_email_validator(text: str) -> None:
    from email_validator import EmailNotValidError, validate_email

    from sidecar.domain.addresses import is_plain_email

    if not is_plain_email(text):
        return
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AssertionError(f"{text!r} taken as plain but refused: {exc}") from None
    assert checked.normalized.lower() == text

"""Identifier validation, normalization and keyed hashing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sidecar.domain.contact import (
    ContactKeyer,
    Identifier,
    Kind,
    identifiers,
    normalize_email,
    normalize_phone,
    validate_workspace_id,
)
from sidecar.domain.errors import InvalidArgument

KEYER = ContactKeyer(b"unit-test-secret-0123456789")


@pytest.mark.parametrize("raw", ["Ana@Example.COM", "  ana@example.com\t", "ANA@EXAMPLE.COM"])
def test_email_is_trimmed_and_lower_cased(raw: str) -> None:
    assert normalize_email(raw) == "ana@example.com"


@pytest.mark.parametrize(
    "raw", ["ana", "ana@", "@example.com", "ana@example", "a b@c.de", "a@b@c.de"]
)
def test_email_that_is_not_an_address_is_refused(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_email(raw)
    assert caught.value.field == "contact.email"


@pytest.mark.parametrize(
    "raw",
    [
        "+49 151 1234 5678",
        "+49-151-12345678",
        "0049 (151) 1234.5678",
        "4915112345678",
        "+49/151/12345678",
    ],
)
def test_phone_notations_normalize_to_e164(raw: str) -> None:
    assert normalize_phone(raw) == "+4915112345678"


@pytest.mark.parametrize(
    "raw", ["", "+", "1234567", "+1234567890123456", "+49 151 abc", "++491511234"]
)
def test_phone_that_is_not_a_number_is_refused(raw: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        normalize_phone(raw, "contacts[3].phone")
    assert caught.value.field == "contacts[3].phone"


@given(
    digits=st.text(alphabet="0123456789", min_size=8, max_size=15),
    separators=st.lists(st.sampled_from([" ", "-", ".", "(", ")", "/"]), max_size=6),
)
def test_any_separators_give_the_same_number(digits: str, separators: list[str]) -> None:
    spaced = "+"
    for i, digit in enumerate(digits):
        spaced += digit + (separators[i] if i < len(separators) else "")
    assert normalize_phone(spaced) == "+" + digits


@pytest.mark.parametrize("ws", ["a", "acme", "Acme-Corp_1.eu", "x" * 64])
def test_valid_workspace_ids(ws: str) -> None:
    assert validate_workspace_id(ws) == ws


@pytest.mark.parametrize("ws", ["", "x" * 65, "a b", "a{b}", "a:b", "é"])
def test_invalid_workspace_ids(ws: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        validate_workspace_id(ws)
    assert caught.value.field == "workspace_id"


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


def test_visitor_keys_differ_by_channel() -> None:
    sms = identifiers(channel="sms", visitor_id="42")[0]
    chat = identifiers(channel="livechat", visitor_id="42")[0]
    assert KEYER.key(sms) != KEYER.key(chat)


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        ContactKeyer(b"short")

"""What the paged Admin listings of this service share (statements, the audit trail): the
page size asked, and page tokens that carry their listing's position as text."""

from __future__ import annotations

import base64
import binascii
import re

from sidecar.domain.errors import InvalidArgument

PAGE_DEFAULT = 100
PAGE_MAX = 1000


def page_size(asked: int) -> int:
    """The page size of a request: ``asked``, or ``PAGE_DEFAULT`` for 0.

    :raise InvalidArgument: outside 0 to ``PAGE_MAX``, naming ``page_size``.
    """
    if not 0 <= asked <= PAGE_MAX:
        raise InvalidArgument("page_size", f"must be 1 to {PAGE_MAX} (0: {PAGE_DEFAULT})")
    return asked or PAGE_DEFAULT


def page_token(text: str) -> str:
    """A page token holding ``text`` (URL-safe base64, without padding)."""
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def read_page_token(token: str, form: re.Pattern[str], listing: str) -> re.Match[str]:
    """The text of a non-empty ``token``, matched whole by ``form``.

    :raise InvalidArgument: naming ``page_token``, for a token that is not one of
        ``listing`` ("a statements listing").
    """
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    found = form.fullmatch(text)
    if found is None:
        raise InvalidArgument("page_token", f"is not a token of {listing}")
    return found

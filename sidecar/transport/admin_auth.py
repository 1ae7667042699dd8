"""Who makes an Admin call: the admin its bearer token names, the admin its client certificate
names, or, on a sidecar without any admin token, a caller on the same host."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import unquote

from sidecar.domain.errors import Unauthenticated
from sidecar.transport.status import Context

# The admin of MAC_ADMIN_TOKEN (or MAC_ADMIN_TOKEN_FILE), and of every call to a sidecar
# without a token.
ADMIN = "admin"
ADMIN_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_RULE = "1 to 64 of A-Z a-z 0-9 . _ -"

# An admin's name and the digest (``token_digest``) of its token.
Tokens = Sequence[tuple[str, bytes]]
# How a call without a valid token is refused.
_REFUSED = "a valid admin token is required (authorization: Bearer <token>)"


def token_digest(token: bytes) -> bytes:
    """What a token is compared as: its SHA-256, so every comparison takes the same time
    whatever the lengths of the token and the guess."""
    return hashlib.sha256(token).digest()


def token_owner(presented: bytes, tokens: Tokens) -> str | None:
    """The admin whose token ``presented`` is, or ``None``.

    Every token is compared, in constant time, whether or not an earlier one matched: the
    time taken tells neither how much of a guess was right nor which admin's token it is.
    """
    given = token_digest(presented)
    owner: str | None = None
    for name, digest in tokens:
        matched = hmac.compare_digest(given, digest)
        owner = name if matched and owner is None else owner
    return owner


def is_local_peer(peer: str) -> bool:
    """Whether a call's peer (``context.peer()``) is on this host: a Unix socket, or a
    loopback address (``ipv4:127.0.0.1:5000``, ``ipv6:[::1]:5000``, escaped or not, and
    IPv4 loopback mapped to IPv6)."""
    scheme, _, rest = peer.partition(":")
    if scheme in ("unix", "unix-abstract"):
        return True
    if scheme not in ("ipv4", "ipv6"):
        return False
    host = unquote(rest).rpartition(":")[0].strip("[]").split("%")[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def certificate_name(auth: Mapping[str, Iterable[bytes]]) -> str:
    """The admin a verified client certificate names: its subject CN, else its first DNS
    subject alternative name (``auth`` is the call's ``auth_context()``).

    :raise Unauthenticated: no certificate, or a name outside the rule of admin names.
    """
    common = [value for value in auth.get("x509_common_name", ()) if value]
    names = common or list(auth.get("peer_dns", ()))
    if not names:
        raise Unauthenticated(
            f"{_REFUSED}, or a client certificate whose subject CN or DNS name names an admin"
        )
    name = names[0].decode("utf-8", "replace")
    if not ADMIN_NAME.fullmatch(name):
        raise Unauthenticated(
            f"the client certificate's {'subject CN' if common else 'DNS name'} is not an "
            f"admin name ({NAME_RULE})"
        )
    return name


class AdminAccess:
    """Decides who makes each Admin call.

    :param tokens: the admins' names and token digests now (files read again when they
        change); empty when no token is configured.
    :param secured: whether any admin credential is configured (a token, a tokens file, or
        names from certificates). Without one, only callers on this host are let in, as the
        admin ``admin``, and a call carrying a token is refused rather than the token ignored.
    :param names_from_cert: a call without a token is let in as the admin its verified client
        certificate names (mTLS on the Admin listener).
    """

    def __init__(
        self,
        tokens: Callable[[], Tokens],
        *,
        secured: bool,
        names_from_cert: bool = False,
    ) -> None:
        self._tokens = tokens
        self.secured = secured
        self.names_from_cert = names_from_cert

    def authorize(self, context: Context) -> str:
        """The name of the admin making the call.

        A call carries at most one ``authorization`` header: a second one is refused whatever
        either holds, never read first-wins.

        :raise Unauthenticated: the call is not let in.
        """
        given = [
            value for key, value in context.invocation_metadata() or () if key == "authorization"
        ]
        if len(given) > 1:
            raise Unauthenticated("send one authorization header, not several")
        if not self.secured:
            if given:
                raise Unauthenticated("this sidecar has no admin token; send none")
            if not is_local_peer(context.peer()):
                raise Unauthenticated(
                    "this sidecar has no admin token: its Admin service answers callers on "
                    "this host only (loopback, Unix socket)"
                )
            return ADMIN
        if given:
            return self._token_owner(given[0])
        if self.names_from_cert:
            return certificate_name(context.auth_context())
        raise Unauthenticated(_REFUSED)

    def _token_owner(self, header: str | bytes) -> str:
        tokens = self._tokens()
        if not tokens:
            raise Unauthenticated(
                "this sidecar takes no admin token: its admins are named by their client "
                "certificates; send none"
            )
        if isinstance(header, str):
            scheme, _, presented = header.partition(" ")
            if scheme.lower() == "bearer":
                owner = token_owner(presented.encode(), tokens)
                if owner is not None:
                    return owner
        raise Unauthenticated(_REFUSED)

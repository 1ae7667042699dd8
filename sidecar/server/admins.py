"""The admins of the Admin service: ``MAC_ADMIN_TOKEN`` (or ``MAC_ADMIN_TOKEN_FILE``) as the
admin ``admin``, the named admins of ``MAC_ADMIN_TOKENS_FILE``, names from client
certificates; and the refusal to serve an Admin service without any of them beyond this host.
"""

from __future__ import annotations

import ipaddress

from sidecar.domain.errors import ConfigError
from sidecar.logs import get_logger
from sidecar.server.files import AdminToken, WatchedFile
from sidecar.settings import Settings, split_addr
from sidecar.transport.admin_auth import (
    ADMIN,
    ADMIN_NAME,
    NAME_RULE,
    AdminAccess,
    Tokens,
    token_digest,
)

log = get_logger("sidecar.server.admins")

TOKENS_FILE = "MAC_ADMIN_TOKENS_FILE"
# The shortest token a tokens file may give an admin.
TOKEN_MIN = 16
# The settings that give the Admin service a token, as its refusals name them.
ADMIN_CREDENTIALS = "MAC_ADMIN_TOKEN, MAC_ADMIN_TOKEN_FILE or MAC_ADMIN_TOKENS_FILE"


def parse_tokens(content: bytes, path: str, single: bytes = b"") -> dict[str, bytes]:
    """The admins of a tokens file: one ``name token`` a line; blank lines and ``#`` comments
    are skipped.

    :param single: the token of ``MAC_ADMIN_TOKEN``, the admin ``admin``: the file may then
        neither name ``admin`` nor give its token to another admin.
    :return: each admin's token, by name.
    :raise ConfigError: naming the file and the line at fault (never showing a token).
    """
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{TOKENS_FILE}: {path} is not UTF-8 text") from None
    tokens: dict[str, bytes] = {}
    lines: dict[str, int] = {}
    holders: dict[bytes, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        problem = _line_problem(fields, single, lines, holders)
        if problem:
            raise ConfigError(f"{TOKENS_FILE}: {path} line {number}: {problem}")
        name, token = fields[0], fields[1].encode()
        tokens[name], lines[name], holders[token] = token, number, number
    if not tokens:
        raise ConfigError(f"{TOKENS_FILE}: {path} names no admin ('name token' lines)")
    return tokens


def _line_problem(
    fields: list[str], single: bytes, lines: dict[str, int], holders: dict[bytes, int]
) -> str:
    """What is wrong with one line's ``fields``, given the names and tokens of the lines
    before (``lines``, ``holders``: their line numbers); empty when nothing is."""
    if len(fields) != 2:
        return "expected 'name token', two fields separated by spaces"
    name, token = fields[0], fields[1].encode()
    if not ADMIN_NAME.fullmatch(name):
        return f"an admin's name is {NAME_RULE}"
    if name in lines:
        return f"{name!r} is named on line {lines[name]} already"
    if single and name == ADMIN:
        return (
            f"{ADMIN!r} is the admin of MAC_ADMIN_TOKEN (or MAC_ADMIN_TOKEN_FILE); name "
            "another, or leave that setting empty"
        )
    if len(token) < TOKEN_MIN:
        return f"a token has at least {TOKEN_MIN} characters (openssl rand -hex 24)"
    if token in holders:
        return f"the token of line {holders[token]} again: each admin has a token of its own"
    if single and token == single:
        return "the token of MAC_ADMIN_TOKEN again: each admin has a token of its own"
    return ""


class AdminTokens:
    """The admins' tokens now: the single token (the admin ``admin``) and a tokens file's,
    each file read again when it changes.

    A tokens file fails closed: a bad file at start is a ``ConfigError`` naming the line; a
    file found bad later (a typo in a rotation) is logged and the admins last read stay.

    :param single: ``MAC_ADMIN_TOKEN`` / ``MAC_ADMIN_TOKEN_FILE``.
    :param path: ``MAC_ADMIN_TOKENS_FILE``; empty: none.
    :raise ConfigError: a tokens file that cannot be read or is not valid.
    """

    def __init__(self, single: AdminToken, path: str = "") -> None:
        self._single = single
        self._file = WatchedFile(path, TOKENS_FILE) if path else None
        self._named: dict[str, bytes] = {}
        token = single.current()
        if self._file is not None:
            self._named = parse_tokens(self._file.content, path, token)
        self._last = (token, self._named)
        self._tokens = self._combined(token)

    @classmethod
    def from_settings(cls, settings: Settings) -> AdminTokens:
        """The tokens ``settings`` give (none when none is set)."""
        single = AdminToken(settings.admin_token, settings.admin_token_file)
        return cls(single, settings.admin_tokens_file)

    @property
    def configured(self) -> bool:
        """Whether any admin token is configured."""
        return bool(self._tokens)

    def _combined(self, single: bytes) -> Tokens:
        named = [(name, token_digest(token)) for name, token in self._named.items()]
        return ([(ADMIN, token_digest(single))] if single else []) + named

    def current(self) -> Tokens:
        """Each admin's name and token digest, reading changed files first."""
        token = self._single.current()
        file = self._file
        if file is not None and file.changed():
            try:
                self._named = parse_tokens(file.content, file.path, token)
            except ConfigError as exc:
                log.warning(
                    "the admin tokens file changed but is not valid; its admins stay as they were",
                    error=str(exc),
                )
            else:
                log.info("admin tokens file reloaded", admins=len(self._named))
        if (token, self._named) != self._last:
            self._last = (token, self._named)
            self._tokens = self._combined(token)
        return self._tokens


def is_loopback_host(host: str) -> bool:
    """Whether a listener's host is this host only: ``localhost`` or a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def admin_access(settings: Settings) -> AdminAccess:
    """Who may call the Admin service, from the settings.

    :raise ConfigError: a token file that is not valid, or an Admin service without any
        admin credential on an address beyond this host.
    """
    tokens = AdminTokens.from_settings(settings)
    secured = tokens.configured or settings.admin_names_from_cert
    if not secured:
        env, addr = (
            ("MAC_ADMIN_ADDR", settings.admin_addr)
            if settings.admin_addr
            else ("MAC_GRPC_ADDR", settings.grpc_addr)
        )
        if not is_loopback_host(split_addr(addr)[0]):
            raise ConfigError(
                f"the Admin service would be served on {addr} ({env}) without an admin "
                f"token: set {ADMIN_CREDENTIALS}, or serve it on loopback only "
                "(MAC_ADMIN_ADDR=127.0.0.1:50052); without a token it answers callers on this "
                "host only"
            )
    return AdminAccess(
        tokens.current, secured=secured, names_from_cert=settings.admin_names_from_cert
    )

"""The Lua scripts: read from the package, addressed by SHA1, and their errors located in the
``.lua`` files they came from.

A script is its libraries (``lua/lib/*.lua``) followed by its own file, sent as one source.
Redis reports errors by the line of that source (``user_script:57``); ``Script.explain``
turns that into the file and line a reader can open (``decide.lua:21``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources

_LUA = resources.files("sidecar.storage") / "lua"
_USER_SCRIPT_LINE = re.compile(r"user_script:([0-9]+)")


@dataclass(frozen=True, slots=True)
class Script:
    """A Lua script and where each of its parts starts.

    :param parts: ``(file name, first line in source)`` of each part, in order.
    """

    name: str
    source: str
    sha: str
    parts: tuple[tuple[str, int], ...]

    @classmethod
    def load(cls, name: str, *libraries: str) -> Script:
        """Read ``lua/<name>.lua`` from the package, after ``lua/lib/<library>.lua``."""
        files = [(f"lib/{lib}.lua", (_LUA / "lib" / f"{lib}.lua").read_text()) for lib in libraries]
        files.append((f"{name}.lua", (_LUA / f"{name}.lua").read_text()))
        return cls.from_parts(name, files)

    @classmethod
    def from_parts(cls, name: str, files: list[tuple[str, str]]) -> Script:
        """A script of ``(file name, text)`` parts, joined by newlines in order."""
        parts: list[tuple[str, int]] = []
        line = 1
        for file_name, text in files:
            parts.append((file_name, line))
            line += text.count("\n") + 1  # the part's lines and the newline joining the next
        source = "\n".join(text for _, text in files)
        sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()
        return cls(name, source, sha, tuple(parts))

    def locate(self, line: int) -> tuple[str, int]:
        """The file and the line in it of ``line`` of the joined source."""
        found = self.parts[0]
        for part in self.parts:
            if part[1] <= line:
                found = part
        return found[0], line - found[1] + 1

    def explain(self, message: str) -> str:
        """A Redis error message with every ``user_script:N`` replaced by ``file.lua:line``."""

        def where(match: re.Match[str]) -> str:
            file_name, line = self.locate(int(match.group(1)))
            return f"{file_name}:{line}"

        return _USER_SCRIPT_LINE.sub(where, message)


DECIDE = Script.load(
    "decide",
    "fields",
    "identity",
    "contacts",
    "terms",
    "events",
    "usage",
    "members",
    "exempt",
    "index",
    "links",
    "trial",
    "overage",
    "flood",
)
MERGE = Script.load("merge", "identity", "contacts", "index", "audit")
SET_EXEMPT = Script.load("set_exempt", "identity", "contacts", "audit")
SET_SUBSCRIPTION = Script.load("set_subscription", "audit")
WEBHOOK_POLL = Script.load("webhook_poll")
WEBHOOK_READ_NEW = Script.load("webhook_read_new")
WEBHOOK_RENEW = Script.load("webhook_renew")
WEBHOOK_RELEASE = Script.load("webhook_release")
CLOSE = Script.load("close")
FORGET = Script.load("forget", "identity", "contacts", "index", "audit")
INDEX_BACKFILL = Script.load("index_backfill", "identity", "index")
LINKS_EXPIRE = Script.load("links_expire", "identity", "index")
# Every script, loaded on every master at start and whenever the health probe finds Redis
# back, so that no call waits for a NOSCRIPT reload.
ALL = (
    DECIDE,
    MERGE,
    SET_EXEMPT,
    SET_SUBSCRIPTION,
    WEBHOOK_POLL,
    WEBHOOK_READ_NEW,
    WEBHOOK_RENEW,
    WEBHOOK_RELEASE,
    CLOSE,
    FORGET,
    INDEX_BACKFILL,
    LINKS_EXPIRE,
)

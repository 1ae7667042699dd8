"""Files the sidecar reads again when they change (certificates, the admin token): what a
mounted Kubernetes Secret becomes when it is rotated."""

from __future__ import annotations

import os
from pathlib import Path

from sidecar.domain.errors import ConfigError


class WatchedFile:
    """A file's content, read again when its size, modification time or inode changed.

    Kubernetes swaps a Secret volume's files through a symlink, so the path is resolved on
    every look.

    :param setting: the variable that named the file, for errors.
    :raise ConfigError: when the file cannot be read at start.
    """

    def __init__(self, path: str, setting: str) -> None:
        self.path = path
        self.setting = setting
        self._stamp: tuple[int, int, int, int] | None = None
        self._content = b""
        self.changed()
        if self._stamp is None:
            raise ConfigError(f"{setting}: cannot read {path}")

    def changed(self) -> bool:
        """Read the file again if it changed; whether it did. A file that cannot be read now
        (mid-rotation) keeps the last content."""
        try:
            info = os.stat(self.path)
            stamp = (info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
            if stamp == self._stamp:
                return False
            content = Path(self.path).read_bytes()
        except OSError:
            return False
        self._stamp, self._content = stamp, content
        return True

    @property
    def content(self) -> bytes:
        """The content last read."""
        return self._content


class AdminToken:
    """The admin token: the setting's value, or the file's content, read again when the file
    changes. Surrounding whitespace (a trailing newline) is not part of the token.

    A token file fails closed: an empty file at start is a ``ConfigError``, and a file found
    empty later (rewritten in place, mid-rotation) keeps the last token, never opening the
    Admin service.
    """

    def __init__(self, value: str, path: str = "") -> None:
        self._value = value.strip().encode()
        self._file = WatchedFile(path, "MAC_ADMIN_TOKEN_FILE") if path else None
        if self._file is not None:
            self._value = self._file.content.strip()
            if not self._value:
                raise ConfigError(f"MAC_ADMIN_TOKEN_FILE: {path} is empty")

    def current(self) -> bytes:
        """The token to compare with; empty (only without a file) means the service is open."""
        if self._file is not None and self._file.changed():
            token = self._file.content.strip()
            if token:
                self._value = token
        return self._value

"""The Unix domain socket listener (``MAC_GRPC_UDS``): its path made ready before the bind,
removed after the stop."""

from __future__ import annotations

import errno
import socket
import stat
from pathlib import Path

from sidecar.domain.errors import ConfigError


class SocketPath:
    """The file of a listening Unix domain socket.

    grpc removes a socket file it finds at the path before it binds, even one another process
    listens on, which would silently take that process's callers: ``prepare`` refuses a live
    one first.

    :param path: the socket's path, as ``MAC_GRPC_UDS`` gives it.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._ours = False  # made free by prepare(): ours to remove

    @property
    def address(self) -> str:
        """The address grpc binds and callers dial: ``unix:<path>``."""
        return f"unix:{self.path}"

    def prepare(self) -> None:
        """Create the parent directory when missing and remove a stale socket (one no process
        listens on).

        :raise ConfigError: when a process listens on the socket, or the path is not a
            socket, or the directory cannot be created.
        """
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            mode = self.path.lstat().st_mode
        except FileNotFoundError:
            self._ours = True
            return
        except OSError as exc:
            raise ConfigError(f"MAC_GRPC_UDS: cannot use {self.path}: {exc.strerror}") from exc
        if not stat.S_ISSOCK(mode):
            raise ConfigError(f"MAC_GRPC_UDS: {self.path} exists and is not a socket")
        if self._listened_on():
            raise ConfigError(f"MAC_GRPC_UDS: another process listens on {self.path}")
        self.path.unlink(missing_ok=True)
        self._ours = True

    def open_to_all(self) -> None:
        """Let every user of the host (every container of the pod, whatever its uid) connect,
        as every one can reach the TCP port: who may call is settled by the directory's
        permissions, the admin token and TLS, as on TCP."""
        self.path.chmod(0o666)

    def remove(self) -> None:
        """Remove the socket file, if it is still there and ``prepare`` made the path ours."""
        if not self._ours:
            return
        try:
            if stat.S_ISSOCK(self.path.lstat().st_mode):
                self.path.unlink()
        except FileNotFoundError:
            pass

    def _listened_on(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(self.path))
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                return False
            raise ConfigError(f"MAC_GRPC_UDS: cannot use {self.path}: {exc.strerror}") from exc
        finally:
            probe.close()
        return True

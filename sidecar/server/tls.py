"""TLS of the gRPC listeners: server credentials from PEM files that are read again when they
change, so a rotated certificate (cert-manager renewing a mounted Secret) serves every new
connection without a restart, while the connections already open keep theirs.

gRPC calls the fetcher of ``grpc.dynamic_ssl_server_credentials`` before every TLS handshake
(on grpc.aio servers too, from one of its own threads): it answers a new certificate
configuration when a file changed and ``None`` otherwise. New files are checked before they
are handed over; files that do not fit together yet (a certificate replaced before its key)
are logged and the previous certificate stays until the next change.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

import grpc

from sidecar.domain.errors import ConfigError
from sidecar.logs import get_logger
from sidecar.server.files import WatchedFile
from sidecar.settings import Settings

log = get_logger("sidecar.server.tls")


class CertificateFiles:
    """One listener's certificate chain and key, and the client CA bundle of mTLS.

    :param listener: the listener's name, for logs (``grpc``, ``admin``).
    :param cert: the certificate file and the variable that named it.
    :param key: the key file and its variable.
    :param client_ca: the client CA file and its variable, or ``None`` (no client
        certificates asked for).
    :raise ConfigError: naming the variable whose file cannot be read or is not usable.
    """

    def __init__(
        self,
        listener: str,
        cert: tuple[str, str],
        key: tuple[str, str],
        client_ca: tuple[str, str] | None = None,
    ) -> None:
        self.listener = listener
        self.cert = WatchedFile(*cert)
        self.key = WatchedFile(*key)
        self.client_ca = WatchedFile(*client_ca) if client_ca else None
        problem = self._problem()
        if problem:
            raise ConfigError(problem)
        self._config = self._configuration()
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def mutual(self) -> bool:
        """Whether callers must present a certificate the client CA signed."""
        return self.client_ca is not None

    @property
    def generation(self) -> int:
        """How many times new files were taken since the start."""
        return self._generation

    def _files(self) -> tuple[WatchedFile, ...]:
        return (self.cert, self.key) + ((self.client_ca,) if self.client_ca else ())

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key.content, self.cert.content)],
            root_certificates=self.client_ca.content if self.client_ca else None,
        )

    def _problem(self) -> str | None:
        """What makes the content last read unusable, naming the variable; ``None`` if
        nothing does."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        for file in (self.cert, self.client_ca):
            if file is not None and not _has_certificate(context, file.content):
                return f"{file.setting}: {file.path} holds no PEM certificate"
        with _readable(self.cert) as cert_path, _readable(self.key) as key_path:
            try:
                context.load_cert_chain(cert_path, key_path, password=_no_password)
            except ssl.SSLError as exc:
                if exc.reason == "KEY_VALUES_MISMATCH":
                    return (
                        f"{self.key.setting}: {self.key.path} is not the private key of "
                        f"{self.cert.setting} ({self.cert.path})"
                    )
                return f"{self.key.setting}: {self.key.path} is not an unencrypted PEM private key"
            except OSError as exc:  # pragma: no cover - the memory file vanished
                return f"{self.key.setting}: {exc}"
        return None

    def current(self) -> tuple[int, grpc.ServerCertificateConfiguration]:
        """Look for changed files; the generation and configuration to serve now."""
        with self._lock:
            changed = [file.setting for file in self._files() if file.changed()]
            if changed:
                self._take_new_files(changed)
            return self._generation, self._config

    def _take_new_files(self, changed: list[str]) -> None:
        problem = self._problem()
        if problem:
            log.warning(
                "tls files changed but are not usable; still serving the previous certificate",
                listener=self.listener,
                error=problem,
            )
            return
        self._config = self._configuration()
        self._generation += 1
        log.info(
            "tls certificate reloaded",
            listener=self.listener,
            changed=changed,
            generation=self._generation,
        )

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials for one listener, taking new files for each new connection.

        Each call makes credentials that keep their own account of what they served, so two
        listeners may share these files.
        """
        served, config = self.current()
        lock = threading.Lock()

        def fetch() -> grpc.ServerCertificateConfiguration | None:
            nonlocal served
            try:
                generation, latest = self.current()
            except Exception:  # gRPC would log it without the listener and keep the old one
                log.exception("tls certificate check failed", listener=self.listener)
                return None
            with lock:
                if generation == served:
                    return None
                served = generation
                return latest

        # types-grpcio leaves out the None that gRPC documents ("no change")
        fetcher = cast("Callable[[], grpc.ServerCertificateConfiguration]", fetch)
        return grpc.dynamic_ssl_server_credentials(
            config, fetcher, require_client_authentication=self.mutual
        )


@dataclass(frozen=True, slots=True)
class ServerTLS:
    """The certificates of the gRPC listeners.

    :param enforcer: those of ``MAC_GRPC_ADDR``.
    :param admin: those of the Admin listener (``MAC_ADMIN_ADDR``): its own when
        ``MAC_ADMIN_TLS_CERT_FILE`` is set, else the Enforcer's.
    """

    enforcer: CertificateFiles
    admin: CertificateFiles

    @property
    def mutual(self) -> bool:
        """Whether callers must present a client certificate."""
        return self.enforcer.mutual

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerTLS | None:
        """The listeners' certificates, or ``None`` when TLS is off.

        :raise ConfigError: naming the variable whose file cannot be read or is not usable.
        """
        if not settings.tls:
            return None
        client_ca = (
            (settings.tls_client_ca_file, "MAC_TLS_CLIENT_CA_FILE")
            if settings.tls_client_ca_file
            else None
        )
        enforcer = CertificateFiles(
            "grpc",
            (settings.tls_cert_file, "MAC_TLS_CERT_FILE"),
            (settings.tls_key_file, "MAC_TLS_KEY_FILE"),
            client_ca,
        )
        admin = enforcer
        if settings.admin_tls_cert_file:
            admin = CertificateFiles(
                "admin",
                (settings.admin_tls_cert_file, "MAC_ADMIN_TLS_CERT_FILE"),
                (settings.admin_tls_key_file, "MAC_ADMIN_TLS_KEY_FILE"),
                client_ca,
            )
        return cls(enforcer, admin)


def _no_password() -> bytes:
    # an encrypted key is refused instead of OpenSSL asking for a password on the terminal
    return b""


def _has_certificate(context: ssl.SSLContext, pem: bytes) -> bool:
    try:
        context.load_verify_locations(cadata=pem.decode("ascii"))
    except (ssl.SSLError, ValueError):  # UnicodeDecodeError is a ValueError
        return False
    return True


@contextlib.contextmanager
def _readable(file: WatchedFile) -> Iterator[str]:
    """A path holding exactly the content last read (a memory file where the system has
    them, so the check sees what gRPC gets even while the file is being replaced)."""
    if not hasattr(os, "memfd_create") or not os.path.isdir("/proc/self/fd"):  # pragma: no cover
        yield file.path
        return
    fd = os.memfd_create("mac-sidecar-tls", os.MFD_CLOEXEC)
    try:
        with os.fdopen(os.dup(fd), "wb") as out:
            out.write(file.content)
        yield f"/proc/self/fd/{fd}"
    finally:
        os.close(fd)

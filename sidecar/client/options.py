"""How a client reaches the sidecar: deadline, retries, the unavailable policy, TLS and the
admin token, and the gRPC channel options they make."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import grpc

ON_UNAVAILABLE = ("raise", "allow", "deny")
_SERVICES = ("mac.v1.Enforcer", "mac.v1.Admin")


@dataclass(frozen=True, slots=True)
class TLS:
    """TLS towards the sidecar: the CA that signed its certificate (default: the system's),
    and a client certificate and key for mTLS. Paths to PEM files.

    :param server_name: the name to check the certificate against, when it is not the host
        of the address.
    """

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials of these files."""

        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca_file),
            private_key=read(self.key_file),
            certificate_chain=read(self.cert_file),
        )


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """What every call of a client shares.

    :param deadline: seconds a call may take, retries included.
    :param retries: attempts after the first when the answer is ``UNAVAILABLE`` (0-4), with
        gRPC's exponential backoff and jitter (25 ms doubling to 1 s). Every call of the API is
        safe to repeat: Activate is idempotent within a period, merges and exemptions are
        idempotent, SetSubscription sets the whole subscription.
    :param on_unavailable: what Check, Activate and ActivateBatch answer when no decision comes
        back: the sidecar stays unreachable (``UNAVAILABLE`` after the retries), misses the
        deadline (``DEADLINE_EXCEEDED``) or is too busy (``RESOURCE_EXHAUSTED``). ``raise`` the
        ``grpc.RpcError``, or ``allow`` / ``deny`` with a ``REASON_BACKEND_UNAVAILABLE``
        decision marked ``from_client``. Admin calls always raise.
    :param token: the admin token, sent as ``authorization: Bearer <token>``.
    :param tls: TLS towards the sidecar; ``None`` for a plaintext channel (same pod, mesh).
        The files are read when the client is made: after a client certificate is rotated,
        make a new client.
    """

    deadline: float = 1.0
    retries: int = 2
    on_unavailable: str = "raise"
    token: str = ""
    tls: TLS | None = None

    def __post_init__(self) -> None:
        if self.on_unavailable not in ON_UNAVAILABLE:
            raise ValueError(f"on_unavailable must be one of {', '.join(ON_UNAVAILABLE)}")
        if not 0 <= self.retries <= 4:
            raise ValueError("retries must be 0 to 4 (gRPC makes at most 5 attempts)")
        if self.deadline <= 0:
            raise ValueError("deadline must be positive")

    def channel_options(self) -> list[tuple[str, str | int]]:
        """gRPC channel options: the retry policy as a service config."""
        options: list[tuple[str, str | int]] = [("grpc.enable_retries", int(self.retries > 0))]
        if self.retries:
            policy = {
                "maxAttempts": self.retries + 1,
                "initialBackoff": "0.025s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            }
            config = {
                "methodConfig": [
                    {"name": [{"service": s} for s in _SERVICES], "retryPolicy": policy}
                ]
            }
            options.append(("grpc.service_config", json.dumps(config)))
        if self.tls is not None and self.tls.server_name:
            options.append(("grpc.ssl_target_name_override", self.tls.server_name))
        return options

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata: the admin token when one is set."""
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()

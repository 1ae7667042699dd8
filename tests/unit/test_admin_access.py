"""Who an Admin call is made by: tokens files, token comparison, local peers, certificate
names, and the settings that go together with them."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest

from sidecar.domain.errors import ConfigError, Unauthenticated
from sidecar.server.admins import AdminTokens, admin_access, is_loopback_host, parse_tokens
from sidecar.server.files import AdminToken
from sidecar.settings import Settings
from sidecar.transport.admin_auth import (
    certificate_name,
    is_local_peer,
    token_digest,
    token_owner,
)

ANA = "ana-token-0123456789"
BOB = "bob-token-0123456789"


def test_a_tokens_file_names_its_admins() -> None:
    content = f"# operators\n\nana {ANA}\n  bob\t{BOB}  \n".encode()
    assert parse_tokens(content, "/t") == {"ana": ANA.encode(), "bob": BOB.encode()}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (f"ana {ANA}\nbob\n", "line 2: expected 'name token'"),
        (f"ana {ANA} extra\n", "line 1: expected 'name token'"),
        (f"ana/ops {ANA}\n", "line 1: an admin's name is 1 to 64 of A-Z a-z 0-9 . _ -"),
        (f"{'a' * 65} {ANA}\n", "line 1: an admin's name is 1 to 64"),
        (f"ana {ANA}\n# x\nana {BOB}\n", "line 3: 'ana' is named on line 1 already"),
        (f"ana {ANA}\nbob {ANA}\n", "line 2: the token of line 1 again"),
        ("ana short-token\n", "line 1: a token has at least 16 characters"),
        ("# nobody yet\n", "names no admin"),
    ],
)
def test_a_bad_tokens_file_names_the_file_and_the_line(content: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_tokens(content.encode(), "/etc/admins")
    assert str(caught.value).startswith("MAC_ADMIN_TOKENS_FILE: /etc/admins ")
    assert problem in str(caught.value)
    assert ANA not in str(caught.value)


def test_beside_the_single_token_the_file_names_no_admin_and_reuses_no_token() -> None:
    single = b"single-token-0123456789"
    with pytest.raises(ConfigError, match="line 1: 'admin' is the admin of MAC_ADMIN_TOKEN"):
        parse_tokens(f"admin {ANA}\n".encode(), "/t", single)
    with pytest.raises(ConfigError, match="line 1: the token of MAC_ADMIN_TOKEN again"):
        parse_tokens(b"ana " + single, "/t", single)
    # without the single token, the file may name the admin 'admin'
    assert parse_tokens(f"admin {ANA}\n".encode(), "/t") == {"admin": ANA.encode()}


def test_a_token_finds_its_admin_and_nothing_else_does() -> None:
    tokens = [(name, token_digest(token.encode())) for name, token in [("ana", ANA), ("bob", BOB)]]
    assert token_owner(ANA.encode(), tokens) == "ana"
    assert token_owner(BOB.encode(), tokens) == "bob"
    for guess in (b"", ANA[:-1].encode(), ANA.encode() + b"x", ANA.upper().encode()):
        assert token_owner(guess, tokens) is None


def test_every_token_is_compared_in_constant_time_whichever_matches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    tokens = [(f"admin{n}", token_digest(f"token-{n}-0123456789".encode())) for n in range(5)]
    for presented in (b"token-0-0123456789", b"token-4-0123456789", b"wrong"):
        compared.clear()
        token_owner(presented, tokens)
        # the first token matching stops nothing; digests make every comparison equal length
        assert [digest for _, digest in compared] == [digest for _, digest in tokens]
        assert {len(given) for given, _ in compared} == {32}


@pytest.mark.parametrize(
    ("peer", "local"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.8.9.10:5000", True),
        ("ipv6:%5B::1%5D:5000", True),  # grpcio escapes the brackets
        ("ipv6:[::1]:5000", True),  # the native engine does not
        ("ipv6:%5B::ffff:127.0.0.1%5D:5000", True),
        ("unix:", True),
        ("unix:/run/mac.sock", True),
        ("unix-abstract:mac", True),
        ("ipv4:10.0.0.7:5000", False),
        ("ipv6:%5B2001:db8::1%5D:5000", False),
        ("ipv6:%5B::ffff:10.0.0.7%5D:5000", False),
        ("ipv4:localhost:5000", False),
        ("", False),
        ("dns:example.com:80", False),
    ],
)
def test_local_peers(peer: str, local: bool) -> None:
    assert is_local_peer(peer) is local


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("mac.internal", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_a_certificate_names_the_admin_by_its_cn_else_its_first_dns_name() -> None:
    assert certificate_name({"x509_common_name": [b"ops-ana"], "peer_dns": [b"x.example"]}) == (
        "ops-ana"
    )
    no_cn = {"x509_common_name": [b""], "peer_dns": [b"bob.example.com", b"second.example"]}
    assert certificate_name(no_cn) == "bob.example.com"
    with pytest.raises(Unauthenticated, match="subject CN is not an admin name"):
        certificate_name({"x509_common_name": [b"Ana Smith"]})
    with pytest.raises(Unauthenticated, match="DNS name is not an admin name"):
        certificate_name({"x509_common_name": [b""], "peer_dns": [b"*.example.com"]})
    with pytest.raises(Unauthenticated, match="names an admin"):
        certificate_name({"transport_security_type": [b"insecure"]})


def test_a_changed_tokens_file_is_read_again_and_a_bad_one_keeps_the_last(tmp_path: Path) -> None:
    path = tmp_path / "admins"
    path.write_text(f"ana {ANA}\n")
    tokens = AdminTokens(AdminToken(""), str(path))
    assert [name for name, _ in tokens.current()] == ["ana"]
    path.write_text(f"ana {ANA}\nbob {BOB}\n")
    assert [name for name, _ in tokens.current()] == ["ana", "bob"]
    path.write_text("bob short\n")
    assert [name for name, _ in tokens.current()] == ["ana", "bob"]
    path.write_text(f"bob {BOB}\n")
    assert [name for name, _ in tokens.current()] == ["bob"]


def test_the_single_token_is_the_admin_named_admin(tmp_path: Path) -> None:
    path = tmp_path / "admins"
    path.write_text(f"ana {ANA}\n")
    tokens = AdminTokens(AdminToken("single-token-0123456789"), str(path))
    current = tokens.current()
    assert token_owner(b"single-token-0123456789", current) == "admin"
    assert token_owner(ANA.encode(), current) == "ana"


def test_an_unreadable_tokens_file_stops_the_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MAC_ADMIN_TOKENS_FILE: cannot read"):
        AdminTokens(AdminToken(""), str(tmp_path / "missing"))


def _settings(**changes: object) -> Settings:
    return Settings(identity_secret="s" * 32, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        ({"grpc_addr": "0.0.0.0:50051"}, "(MAC_GRPC_ADDR)"),
        ({"grpc_addr": "10.1.2.3:50051"}, "(MAC_GRPC_ADDR)"),
        ({"admin_addr": "0.0.0.0:50052"}, "(MAC_ADMIN_ADDR)"),
        ({"grpc_addr": "0.0.0.0:50051", "admin_addr": "[::]:50052"}, "(MAC_ADMIN_ADDR)"),
    ],
)
def test_an_admin_service_without_a_token_beyond_this_host_is_refused(
    changes: dict[str, object], setting: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        admin_access(_settings(**changes))
    message = str(caught.value)
    assert setting in message
    assert "MAC_ADMIN_TOKEN, MAC_ADMIN_TOKEN_FILE or MAC_ADMIN_TOKENS_FILE" in message


def test_without_a_token_the_admin_service_may_stay_on_this_host() -> None:
    for changes in (
        {},
        {"grpc_addr": "localhost:50051"},
        {"grpc_addr": "0.0.0.0:50051", "admin_addr": "127.0.0.1:50052"},
    ):
        assert not admin_access(_settings(**changes)).secured
    assert admin_access(_settings(grpc_addr="0.0.0.0:1", admin_token="t" * 16)).secured


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({}, "MAC_ADMIN_NAMES_FROM_CERT needs mTLS on the Admin listener"),
        (
            {"tls_cert_file": "/c", "tls_key_file": "/k"},
            "MAC_ADMIN_NAMES_FROM_CERT needs mTLS on the Admin listener",
        ),
        ({"grpc_engine": "native"}, "MAC_ADMIN_NAMES_FROM_CERT needs MAC_GRPC_ENGINE=grpcio"),
    ],
)
def test_names_from_certificates_need_mtls(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _settings(admin_names_from_cert=True, **changes)

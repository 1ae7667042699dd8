"""The ``sidecar`` command's options say where each command connects."""

from __future__ import annotations

import pytest

from sidecar.cli.main import build_parser


def help_of(capsys: pytest.CaptureFixture[str], *command: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    return capsys.readouterr().out


def test_contacts_key_asks_the_enforcer_and_takes_no_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of(capsys, "contacts", "key")
    assert "MAC_GRPC_ADDR" in text
    assert "MAC_ADMIN_ADDR" not in text
    assert "--token" not in text


@pytest.mark.parametrize(
    "command",
    [("subscription", "get"), ("usage",), ("contacts", "merge"), ("events", "tail")],
)
def test_operator_commands_ask_the_admin_service_with_a_token(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    text = help_of(capsys, *command)
    assert "MAC_ADMIN_ADDR" in text
    assert "--token" in text


def test_contacts_key_reads_its_address_from_mac_grpc_addr(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAC_GRPC_ADDR", "127.0.0.1:7001")
    monkeypatch.setenv("MAC_ADMIN_ADDR", "127.0.0.1:7002")
    ns = build_parser().parse_args(["contacts", "key", "acme", "email=ana@example.com"])
    assert ns.addr == "127.0.0.1:7001"
    ns = build_parser().parse_args(["usage", "acme"])
    assert ns.addr == "127.0.0.1:7002"

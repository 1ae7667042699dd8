"""Settings from MAC_* variables and flags, validated, with secrets redacted."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.domain.errors import ConfigError
from sidecar.settings import Settings, redact_url, split_addr


def test_defaults() -> None:
    s = Settings()
    assert s.grpc_addr == "127.0.0.1:50051"
    assert s.default_limit == 100
    assert s.batch_max == 10_000
    assert s.failure_mode == "error"


def test_variables_are_read_and_flags_win() -> None:
    env = {"MAC_DEFAULT_LIMIT": "250", "MAC_GRPC_ADDR": "0.0.0.0:6000", "MAC_REDIS_TIMEOUT": "0.2"}
    s = Settings.from_env(env, {"grpc_addr": "127.0.0.1:7000", "batch_max": None})
    assert s.default_limit == 250
    assert s.redis_timeout == 0.2
    assert s.grpc_addr == "127.0.0.1:7000"
    assert s.batch_max == 10_000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MAC_DEFAULT_LIMIT": "lots"}, "MAC_DEFAULT_LIMIT must be a whole number"),
        ({"MAC_DEFAULT_LIMIT": "-1"}, "MAC_DEFAULT_LIMIT must be at least 0"),
        ({"MAC_FAILURE_MODE": "maybe"}, "MAC_FAILURE_MODE must be one of"),
        ({"MAC_GRPC_ADDR": "50051"}, "MAC_GRPC_ADDR must be host:port"),
        ({"MAC_REDIS_URL": "http://x"}, "MAC_REDIS_URL must start with"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_secrets_never_show_in_repr_or_public() -> None:
    s = Settings(identity_secret="super-secret-value-123", redis_url="redis://u:pw@h:6379/0")
    assert "super-secret" not in repr(s)
    assert "pw" not in repr(s)
    assert s.public()["identity_secret"] == "<set>"
    assert s.public()["redis_url"] == "redis://u:***@h:6379/0"


def test_secret_from_file(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_text("from-a-file-0123456789\n")
    assert Settings(identity_secret_file=str(path)).secret_bytes() == b"from-a-file-0123456789"


def test_missing_or_short_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no identity secret"):
        Settings().secret_bytes()
    with pytest.raises(ConfigError, match="at least 16"):
        Settings(identity_secret="short").secret_bytes()
    with pytest.raises(ConfigError, match="MAC_IDENTITY_SECRET_FILE"):
        Settings(identity_secret_file=str(tmp_path / "absent")).secret_bytes()


def test_addresses_and_urls() -> None:
    assert split_addr("[::1]:50051") == ("::1", 50051)
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


@pytest.mark.parametrize(
    ("raw", "value"), [("true", True), ("1", True), ("off", False), ("", False)]
)
def test_boolean_settings_read_words(raw: str, value: bool) -> None:
    assert Settings.from_env({"MAC_REQUIRE_SUBSCRIPTION": raw}).require_subscription is value


def test_a_boolean_setting_refuses_anything_else() -> None:
    with pytest.raises(ConfigError, match="MAC_REQUIRE_SUBSCRIPTION must be true or false"):
        Settings.from_env({"MAC_REQUIRE_SUBSCRIPTION": "maybe"})

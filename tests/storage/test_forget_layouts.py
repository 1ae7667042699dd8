"""forget.lua, index_backfill.lua and links_expire.lua: each header's ARGV and reply places are
the codec's, and storage/forgetting.py builds and reads them by those names."""

from __future__ import annotations

from sidecar.domain.audit import AuditContext
from sidecar.domain.contact import KeyedContact
from sidecar.domain.forget_ports import ForgetRequest, period_ordinal
from sidecar.storage import codec, forgetting
from tests.storage.test_script_layouts import Reply, header, read


def test_the_forget_header_is_the_codec_layout() -> None:
    found = header(read("forget.lua"))
    assert (tuple(found.args), found.more_args) == (codec.FORGET_ARGV, "contact")
    assert found.keys == ["links", "index", "exempt", "audit"]
    assert found.replies == {"": Reply(codec.FORGET_REPLY)}


def test_the_index_scripts_headers_are_the_codec_layouts() -> None:
    backfill = header(read("index_backfill.lua"))
    assert (tuple(backfill.args), backfill.more_args) == (codec.INDEX_BACKFILL_ARGV, "keys")
    assert backfill.replies == {"": Reply(codec.INDEX_BACKFILL_REPLY)}
    expire = header(read("links_expire.lua"))
    assert (tuple(expire.args), expire.more_args) == (codec.LINKS_EXPIRE_ARGV, "identities")
    assert expire.replies == {"": Reply(codec.LINKS_EXPIRE_REPLY)}


def test_forget_args_and_reply_follow_the_codec_names() -> None:
    contact = KeyedContact((b"i" * 14, b"e" * 14), b"v" * 14, "web")
    audit = AuditContext("ops", "Forget", 1_000)
    request = ForgetRequest("acme", contact, ("2026-11",), audit)
    args = forgetting.forget_args(request, b"s" * 16, 2_000)
    assert dict(zip(codec.FORGET_ARGV, args, strict=False)) == {
        "seed": b"s" * 16,
        "admin": "ops",
        "method": "Forget",
        "now_ms": 1_000,
        "retention_ms": 2_000,
    }
    assert args[len(codec.FORGET_ARGV) :] == codec.encode_contacts([contact])
    reply = {"forgotten": 1, "identifiers_removed": 4, "periods": 2}
    got = forgetting.forget_reply([reply[name] for name in codec.FORGET_REPLY])
    assert (got.forgotten, got.identifiers_removed, got.periods) == (True, 4, 2)


def test_a_period_ordinal_is_the_one_lib_index_stamps() -> None:
    assert period_ordinal("2026-11") == 2026 * 12 + 10
    assert period_ordinal("2026-11@1794000000") == period_ordinal("2026-11")
    assert period_ordinal("2027-01") - period_ordinal("2026-11") == 2
    assert "string.sub(period_key, 1, 4)) * 12" in read("lib/index.lua")

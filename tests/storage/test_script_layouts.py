"""Each Lua script's header is the truth about it: its ARGV and reply places, read from the
header, are the codec's by name and in order, decide.lua reads ARGV and KEYS by the header's
names, and every ``Uses:`` line names the lib files the script is loaded with."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import resources

import pytest

from sidecar.domain.audit import AuditContext
from sidecar.domain.clock import to_ms
from sidecar.domain.closing_ports import CloseRequest
from sidecar.domain.contact import KeyedContact
from sidecar.domain.decision import Policy, Reason
from sidecar.domain.period import period_at
from sidecar.domain.ports import DecideRequest, ExemptRequest, MergeRequest
from sidecar.storage import audit, closing, codec, scripts

LUA = resources.files("sidecar.storage") / "lua"
SCRIPTS = sorted(p.name.removesuffix(".lua") for p in LUA.iterdir() if p.name.endswith(".lua"))
LIBS = sorted(p.name.removesuffix(".lua") for p in (LUA / "lib").iterdir())


@dataclass
class Reply:
    """One reply layout of a header: its places, then the groups repeated after them."""

    places: tuple[str, ...] = ()
    per: dict[str, tuple[str, ...]] = field(default_factory=dict)
    scalar: bool = False


@dataclass
class Header:
    """What a script's header documents, by name."""

    lines: list[str]
    keys: list[str] = field(default_factory=list)
    args: list[str] = field(default_factory=list)
    more_args: str = ""  # what fills ARGV[len(args) + 1..]
    replies: dict[str, Reply] = field(default_factory=dict)  # "" for the reply, else its case
    uses: dict[str, list[str]] = field(default_factory=dict)  # lib file -> functions named


def read(path: str) -> str:
    return (LUA / path).read_text()


def header(text: str) -> Header:
    lines = []
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        lines.append(line)
    found = Header(lines)
    reply: Reply | None = None
    for line in lines:
        if m := re.match(r"-- KEYS\[(\d+)\]\s+(\w+)", line):
            assert int(m[1]) == len(found.keys) + 1, line
            found.keys.append(m[2])
        elif m := re.match(r"-- ARGV\[(\d+)\]\s+(\w+)", line):
            assert int(m[1]) == len(found.args) + 1, line
            found.args.append(m[2])
        elif m := re.match(r"-- ARGV\[(\d+)\.\.\]\s+(\w+)", line):
            assert int(m[1]) == len(found.args) + 1, line
            found.more_args = m[2]
        elif m := re.match(r"-- Reply(?: when (\w+))?:\s*$", line):
            reply = found.replies[m[1] or ""] = Reply()
        elif m := re.match(r"-- Reply(?: when (\w+))?: (\w+)", line):
            found.replies[m[1] or ""] = Reply((m[2],), scalar=True)
        elif reply is not None and (m := re.match(r"--\s+\[(\d+)\]\s+(\w+)", line)):
            assert int(m[1]) == len(reply.places) + 1, line
            reply.places += (m[2],)
        elif reply is not None and (m := re.match(r"--\s+then per ([\w ]+): (.+)$", line)):
            reply.per[m[1]] = tuple(m[2].split(", "))
        elif not line.startswith("--   "):
            reply = None
    # the Uses: line runs on to the next blank comment line
    start = next((i for i, line in enumerate(lines) if line.startswith("-- Uses: ")), len(lines))
    uses = []
    for line in lines[start:]:
        if line.strip() == "--":
            break
        uses.append(line[3:])
    for m in re.finditer(r"lib/(\w+)\.lua(?: \(([^)]*)\))?", " ".join(uses)):
        found.uses[m[1]] = [name.strip() for name in (m[2] or "").split(",") if name.strip()]
    return found


def loaded_with(name: str) -> list[str] | None:
    """The lib files a script is loaded with, in order (None: not in scripts.ALL)."""
    for script in scripts.ALL:
        if script.name == name:
            return [part.removeprefix("lib/").removesuffix(".lua") for part, _ in script.parts[:-1]]
    return None


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_header_documents_keys_argv_reply_why_and_uses(name: str) -> None:
    found = header(read(f"{name}.lua"))
    assert found.lines[0].startswith(f"-- {name}.lua: "), name
    assert found.keys, f"{name}.lua documents no KEYS[i]"
    assert found.args or found.more_args, f"{name}.lua documents no ARGV[i]"
    assert "" in found.replies, f"{name}.lua documents no Reply"
    reply = found.replies[""]
    assert reply.scalar or reply.places, f"{name}.lua documents no reply place"
    assert any(line.startswith("-- Why") for line in found.lines), f"{name}.lua: why atomic?"
    assert any(line.startswith("-- Uses: ") for line in found.lines), f"{name}.lua: Uses:?"


@pytest.mark.parametrize("name", LIBS)
def test_every_lib_header_says_what_it_takes_gives_and_uses(name: str) -> None:
    found = header(read(f"lib/{name}.lua"))
    assert found.lines[0].startswith(f"-- lib/{name}.lua: "), name
    for start in ("-- KEYS", "-- ARGV", "-- Reply", "-- Why", "-- Uses: "):
        assert any(line.startswith(start) for line in found.lines), f"lib/{name}: {start}?"


@pytest.mark.parametrize("name", [*SCRIPTS, *(f"lib/{lib}" for lib in LIBS)])
def test_the_functions_a_uses_line_names_are_in_the_lib_it_names(name: str) -> None:
    found = header(read(f"{name}.lua"))
    for lib, functions in found.uses.items():
        text = read(f"lib/{lib}.lua")
        for function in functions:
            assert re.search(rf"^local (function )?{function}\b", text, re.M), (lib, function)


@pytest.mark.parametrize("name", SCRIPTS)
def test_a_uses_line_names_the_libs_the_script_is_loaded_with(name: str) -> None:
    # a script not in scripts.ALL (the webhook scripts, today) is loaded without libs
    libs = loaded_with(name) or []
    assert list(header(read(f"{name}.lua")).uses) == libs


def test_each_lib_is_loaded_after_the_libs_it_uses() -> None:
    for script in scripts.ALL:
        libs = loaded_with(script.name) or []
        for i, lib in enumerate(libs):
            for used in header(read(f"lib/{lib}.lua")).uses:
                assert used in libs[:i], f"{script.name}: lib/{lib}.lua uses lib/{used}.lua"


def test_the_decide_header_is_the_codec_layout() -> None:
    found = header(read("decide.lua"))
    assert tuple(found.args) == codec.DECIDE_ARGV
    assert found.more_args == "contacts"
    assert found.replies[""] == Reply(
        codec.DECIDE_REPLY,
        {"contact": codec.DECIDE_PER_CONTACT, "channel changed": codec.DECIDE_PER_CHANNEL},
    )
    assert found.replies["stale"] == Reply(codec.STALE_REPLY)
    assert found.replies["closed"] == Reply(codec.CLOSED_REPLY)
    assert set(found.replies) == {"", "stale", "closed"}


def test_the_merge_header_is_the_codec_layout() -> None:
    found = header(read("merge.lua"))
    assert (tuple(found.args), found.more_args) == (codec.MERGE_ARGV, "contacts")
    assert found.replies == {"": Reply(codec.MERGE_REPLY)}


def test_the_set_exempt_header_is_the_codec_layout() -> None:
    found = header(read("set_exempt.lua"))
    assert (tuple(found.args), found.more_args) == (codec.EXEMPT_ARGV, "contacts")
    assert found.replies == {"": Reply(codec.EXEMPT_REPLY, {"contact": codec.EXEMPT_PER_CONTACT})}


def test_the_set_subscription_header_is_the_codec_layout() -> None:
    found = header(read("set_subscription.lua"))
    assert (tuple(found.args), found.more_args) == (codec.SET_SUBSCRIPTION_ARGV, "fields")
    assert found.replies == {"": Reply(("version",), scalar=True)}


def test_the_close_header_is_the_codec_layout() -> None:
    found = header(read("close.lua"))
    assert (tuple(found.args), found.more_args) == (codec.CLOSE_ARGV, "")
    assert found.keys == ["counts", "trial", "events", "statements"]
    assert found.replies == {"": Reply(codec.CLOSE_REPLY)}


def test_close_args_follow_the_codec_names() -> None:
    period = period_at(datetime(2026, 11, 15, tzinfo=UTC))
    args = closing.close_args(CloseRequest("acme", period, 3_000, 101, "starter", 404))
    assert dict(zip(codec.CLOSE_ARGV, args, strict=True)) == {
        "period_key": period.key,
        "period_name": period.name,
        "start_ms": to_ms(period.start),
        "end_ms": to_ms(period.end),
        "now_ms": 3_000,
        "limit": 101,
        "plan": "starter",
        "events_max": 404,
        "workspace_id": "acme",
    }


def test_a_close_reply_is_read_by_the_codec_names() -> None:
    reply = {"closed": 1, "closed_at_ms": b"3000", "statement": b""}
    got = closing.close_reply("acme", "2026-11", [reply[name] for name in codec.CLOSE_REPLY])
    assert (got.closed_now, got.closed_at_ms, got.statement) == (True, 3_000, None)


def test_decide_reads_argv_and_keys_by_the_header_names() -> None:
    text = read("decide.lua")
    found = header(text)
    body = text[len("\n".join(found.lines)) :]
    args = {name: int(i) for name, i in re.findall(r"(\w+) = ARGV\[(\d+)\]", body)}
    assert args == {name: i for i, name in enumerate(found.args, 1)}
    assert re.search(rf"^local ARG_CONTACTS = {len(found.args) + 1}\b", body, re.M)
    keys = {name: int(i) for name, i in re.findall(r"(\w+) = KEYS\[(\d+)\]", body)}
    assert keys == {name: i for i, name in enumerate(found.keys, 1)}


POLICY = Policy(101, "starter", "growth", 202, 3, (80, 100), 404)
CONTACTS = (KeyedContact((b"i" * 14, b"e" * 14), b"v" * 14, "web"), KeyedContact((b"p" * 14,)))


def test_decide_args_follow_the_codec_names() -> None:
    period = period_at(datetime(2026, 11, 15, tzinfo=UTC))
    request = DecideRequest(
        "acme",
        period,
        1_000,
        2_000,
        POLICY,
        "7",
        CONTACTS,
        dry_run=True,
        day="2026-11-15",
        late=True,
    )
    args = codec.decide_args(request)
    assert dict(zip(codec.DECIDE_ARGV, args, strict=False)) == {
        "period_key": period.key,
        "period_name": period.name,
        "now_ms": 1_000,
        "expire_at_ms": 2_000,
        "dry_run": 1,
        "limit": 101,
        "plan": "starter",
        "trial_plan": "growth",
        "trial_limit": 202,
        "trial_days": 3,
        "thresholds": "80,100",
        "events_max": 404,
        "workspace_id": "acme",
        "subscription_version": "7",
        "day": "2026-11-15",
        "late": 1,
    }
    assert args[len(codec.DECIDE_ARGV) :] == codec.encode_contacts(CONTACTS)


AUDIT = AuditContext("ops", "Merge", 3_000)
AUDIT_PLACES = {"admin": "ops", "method": "Merge", "now_ms": 3_000, "retention_ms": 5_000}


def test_merge_and_exempt_args_follow_the_codec_names() -> None:
    request = MergeRequest("acme", "2026-11", 2_000, CONTACTS[0], CONTACTS[1:], AUDIT)
    merge = codec.merge_args(request, 5_000)
    assert dict(zip(codec.MERGE_ARGV, merge, strict=False)) == {
        "period_key": "2026-11",
        "expire_at_ms": 2_000,
        **AUDIT_PLACES,
    }
    assert merge[len(codec.MERGE_ARGV) :] == codec.encode_contacts(CONTACTS)
    exempt = codec.exempt_args(ExemptRequest("acme", CONTACTS, exempt=True, audit=AUDIT), 5_000)
    assert dict(zip(codec.EXEMPT_ARGV, exempt, strict=False)) == {"exempt": 1, **AUDIT_PLACES}
    assert exempt[len(codec.EXEMPT_ARGV) :] == codec.encode_contacts(CONTACTS)


def test_the_scripts_that_change_a_workspace_read_the_audit_places_by_the_codec_names() -> None:
    for name, argv, first in (
        ("merge", codec.MERGE_ARGV, 3),
        ("set_exempt", codec.EXEMPT_ARGV, 2),
        ("set_subscription", codec.SET_SUBSCRIPTION_ARGV, 2),
        ("forget", codec.FORGET_ARGV, 2),
    ):
        text = read(f"{name}.lua")
        found = header(text)
        assert found.keys[-1] == "audit", name
        assert found.args[first - 1 : first - 1 + len(codec.AUDIT_ARGV)] == list(codec.AUDIT_ARGV)
        assert argv[first - 1 : first - 1 + len(codec.AUDIT_ARGV)] == codec.AUDIT_ARGV
        assert f"read_audit({first})" in text, name
        assert "append_audit(audit_key, audit, " in text, name
    lib = read("lib/audit.lua")
    assert re.findall(r"(\w+) = (?:tonumber\()?ARGV\[first(?: \+ \d)?\]", lib) == [
        "admin",
        "method",
        "now",
        "retention_ms",
    ]


def test_the_audited_subscription_fields_are_those_set_subscription_writes_but_derived() -> None:
    audited, derived = set(audit.AUDITED_SUBSCRIPTION_FIELDS), audit.DERIVED_SUBSCRIPTION_FIELDS
    assert "plan" in audited
    assert not audited & derived
    assert audited | derived == set(codec.SUBSCRIPTION_FIELDS)


def test_a_decide_reply_is_read_by_the_codec_names() -> None:
    head = {
        "active": 11,
        "limit": 22,
        "trial_until_ms": 33,
        "plan": b"growth",
        "events_written": 2,
        "channels_changed": 1,
        "identity_version": b"5",
        "overage": 3,
    }
    contact = {"code": 4, "identity": b"k" * 14, "flags": codec.FLAG_CONFLICT}
    channel = {"channel": b"web", "count": 9}
    reply = [
        *(head[name] for name in codec.DECIDE_REPLY),
        *(contact[name] for name in codec.DECIDE_PER_CONTACT),
        *(channel[name] for name in codec.DECIDE_PER_CHANNEL),
    ]
    decoded = codec.decide_reply(reply)
    assert (decoded.active, decoded.limit, decoded.trial_until_ms, decoded.plan) == (
        11,
        22,
        33,
        "growth",
    )
    assert (decoded.identity_version, decoded.channels, decoded.overage) == (5, (("web", 9),), 3)
    assert codec.events_written(reply) == 2
    assert codec.admitted_any(reply)
    (outcome,) = decoded.outcomes
    assert (outcome.reason, outcome.identity, outcome.conflict, outcome.overage) == (
        Reason.TRIAL_STARTED,
        b"k" * 14,
        True,
        False,
    )


def test_merge_and_exempt_replies_are_read_by_the_codec_names() -> None:
    merged = {"survivor": b"s" * 14, "folded": 3, "uncounted": 2, "active": 7}
    got = codec.merge_reply([merged[name] for name in codec.MERGE_REPLY])
    assert (got.survivor, got.folded, got.uncounted, got.active) == (b"s" * 14, 3, 2, 7)
    exempt = codec.exempt_reply([4, b"a" * 14, b"b" * 14])
    assert (exempt.changed, exempt.identities) == (4, [b"a" * 14, b"b" * 14])

"""The `sidecar` command against a real server, and `sidecar serve` as a process."""

from __future__ import annotations

import csv
import json
from datetime import timedelta
from pathlib import Path

import redis

from sidecar.domain.clock import ManualClock
from sidecar.domain.contact import ContactFields
from sidecar.server.app import Sidecar
from tests.support.commands import cli, serve_once
from tests.support.constants import ADMIN_TOKEN
from tests.support.redis_servers import RedisServer, free_port
from tests.support.sidecar_process import SidecarProcess
from tests.support.sidecars import SidecarFactory


async def test_activate_and_check_print_the_decision(sidecar_app: Sidecar) -> None:
    addr = f"--addr=127.0.0.1:{sidecar_app.port}"
    code, out, _ = await cli("activate", "acme", "--email", "Ana@Example.com", addr)
    assert code == 0
    assert "allowed: ADMITTED" in out
    assert "1 of 100 active, 99 remaining" in out
    assert "2026-11" in out

    code, out, _ = await cli("check", "acme", "--email", "ana@example.com", addr, "--json")
    assert code == 0
    decision = json.loads(out)
    assert decision["reason"] == "REASON_ALREADY_ACTIVE"
    assert decision["usage"]["active"] == 1
    assert decision["contact_key"]  # the proto's field names


async def test_denied_exits_1(make_sidecar: SidecarFactory) -> None:
    await make_sidecar(default_limit=0)
    addr = f"--addr=127.0.0.1:{make_sidecar.last.port}"
    code, out, _ = await cli("activate", "acme", "--phone", "+4930123456", addr)
    assert code == 1
    assert "DENIED: LIMIT_REACHED" in out


async def test_bad_input_prints_one_line_and_exits_2(sidecar_app: Sidecar) -> None:
    addr = f"--addr=127.0.0.1:{sidecar_app.port}"
    code, out, err = await cli("activate", "acme", "--email", "nope", addr)
    assert code == 2
    assert out == ""
    assert err.strip() == "error: INVALID_ARGUMENT: contact.email: is not an email address"


async def test_no_sidecar_says_so() -> None:
    code, _, err = await cli(
        "activate", "acme", "--id", "x", f"--addr=127.0.0.1:{free_port()}", "--timeout", "1"
    )
    assert code == 3
    assert "cannot reach the sidecar" in err


def test_serve_refuses_to_start_without_a_secret(redis_server: RedisServer) -> None:
    env = SidecarProcess(redis_server.url).env
    del env["MAC_IDENTITY_SECRET"]
    done = serve_once(env)
    assert done.returncode == 2
    assert "no identity secret" in done.stderr


def test_serve_refuses_a_bad_setting_naming_it(redis_server: RedisServer) -> None:
    done = serve_once(SidecarProcess(redis_server.url, MAC_DEFAULT_LIMIT="many").env)
    assert done.returncode == 2
    assert "MAC_DEFAULT_LIMIT must be a whole number, not 'many'" in done.stderr


def test_serve_logs_settings_without_secrets_and_stops_on_sigterm(
    redis_server: RedisServer, redis_db: redis.Redis, engine_env: str
) -> None:
    proc = SidecarProcess(redis_server.url)
    proc.start()
    assert proc.stop() == 0
    starting = json.loads(next(line for line in proc.lines if '"starting"' in line))
    listening = json.loads(next(line for line in proc.lines if '"listening"' in line))
    assert starting["grpc_engine"] == listening["engine"] == engine_env
    assert starting["identity_secret"] == "<set>"
    assert starting["default_limit"] == 100
    assert all("test-identity-secret" not in line for line in proc.lines)
    assert any('"shutting down"' in line for line in proc.lines)


async def test_subscription_set_and_get(sidecar_app: Sidecar) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    code, out, _ = await cli(
        "subscription",
        "set",
        "acme",
        "--plan",
        "pro",
        "--packs",
        "2",
        "--platform-version",
        "7.3.0",
        "--timezone",
        "Europe/Berlin",
        *conn,
    )
    assert code == 0
    assert "plan          pro (2 MAC packs)" in out
    assert "limit         6,100" in out
    code, out, _ = await cli("subscription", "get", "acme", "--json", *conn)
    assert code == 0
    sub = json.loads(out)
    assert (sub["effective_limit"], sub["custom_limit"], sub["packs"]) == (6100, 0, 2)
    assert sub["updated_at"].endswith("Z")


async def test_subscription_set_changes_only_the_flags_given(sidecar_app: Sidecar) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    code, _, err = await cli("subscription", "set", "w2", "--packs", "3", *conn)
    assert (code, err.splitlines()) == (
        2,
        [
            "error: FAILED_PRECONDITION: workspace w2 has no subscription yet: "
            "the first change names a plan",
            "hint: name the plan with --plan, e.g. sidecar subscription set w2 --plan starter",
        ],
    )
    first = ("--plan", "pro", "--timezone", "Europe/Berlin", "--platform-version", "7.3.0")
    code, _, _ = await cli("subscription", "set", "w2", *first, "--shadow", *conn)
    assert code == 0
    code, out, _ = await cli("subscription", "set", "w2", "--packs", "3", *conn)
    assert code == 0
    assert "plan          pro (3 MAC packs)" in out
    assert "time zone     Europe/Berlin" in out
    assert "platform      7.3.0" in out
    assert "shadow mode   on (never denies)" in out
    code, out, _ = await cli(
        "subscription", "set", "w2", "--clear", "timezone", "--thresholds", "50,90", *conn
    )
    assert code == 0
    assert "time zone     UTC" in out
    assert "plan          pro (3 MAC packs)" in out
    assert "thresholds    50%, 90%" in out
    code, out, _ = await cli("subscription", "set", "w2", "--clear", "thresholds", *conn)
    assert "thresholds    80%, 100%   (the service's)" in out
    code, _, err = await cli("subscription", "set", "w2", "--packs", "1", "--clear", "packs", *conn)
    assert (code, err.strip()) == (2, "error: packs is both set and cleared")
    code, _, err = await cli("subscription", "set", "w2", *conn)
    assert code == 2
    assert "nothing to change" in err


async def test_subscription_errors_are_one_line(sidecar_app: Sidecar) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    code, _out, err = await cli(
        "subscription", "set", "acme", "--plan", "pro", "--packs", "9", *conn
    )
    assert code == 2
    assert err.strip() == "error: FAILED_PRECONDITION: pro allows 0 to 5 MAC packs (got 9)"
    code, _, err = await cli("subscription", "get", "acme", f"--addr=127.0.0.1:{sidecar_app.port}")
    assert code == 2
    assert "UNAUTHENTICATED: an admin token is needed" in err
    assert "MAC_ADMIN_TOKEN" in err
    code, _, err = await cli(
        "subscription", "get", "acme", f"--addr=127.0.0.1:{sidecar_app.port}", "--token=wrong"
    )
    assert (code, err.splitlines()[0]) == (2, "error: UNAUTHENTICATED: the admin token was refused")
    code, _, err = await cli("usage", "acme", "--addr=localhost")
    assert code == 2
    assert "--addr must be host:port" in err


async def test_usage_table_and_json(sidecar_app: Sidecar, clock: ManualClock) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    for n in range(2):
        await cli("activate", "acme", "--id", f"c{n}", conn[0])
    await sidecar_app.enforcer.activate_batch(
        "acme", [ContactFields(id=f"crm-{n}", channel="sms") for n in range(20)]
    )
    clock.advance(timedelta(days=2))
    await sidecar_app.enforcer.activate_batch(
        "acme", [ContactFields(id=f"wa-{n}", channel="whatsapp") for n in range(5)]
    )
    code, out, _ = await cli("usage", "acme", *conn)
    assert code == 0
    assert "27 of 100 active, 73 remaining" in out
    assert "[#####...............]  27%" in out
    # 27 by 17 Nov 12:00, 16.5 of 30 days: 49 at the end
    assert "forecast    49 by the period's end at this pace (49% of the limit)" in out
    assert "sms                 20   74%" in out
    assert "whatsapp             5   19%" in out
    assert "unspecified          2    7%" in out
    assert "new contacts by day, 2026-11-15 to 2026-11-17: 27, most 22 on 2026-11-15" in out
    assert "█ ▂" in out
    code, out, _ = await cli("usage", "acme", "--json", *conn)
    reply = json.loads(out)
    assert reply["usage"]["active"] == 27
    assert reply["forecast_active"] == 49
    assert reply["channels"][0] == {"channel": "sms", "active": 20}
    assert reply["days"] == [
        {"date": "2026-11-15", "admitted": 22},
        {"date": "2026-11-17", "admitted": 5},
    ]


async def test_contacts_export_csv(sidecar_app: Sidecar, tmp_path: Path) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    batch = await sidecar_app.enforcer.activate_batch(
        "acme", [ContactFields(email=f"p{n}@example.com") for n in range(50)]
    )
    target = tmp_path / "contacts.csv"
    code, _out, err = await cli(
        "contacts",
        "export",
        "acme",
        "--period",
        "2026-11",
        "--page-size",
        "7",
        "--output",
        str(target),
        *conn,
    )
    assert code == 0
    assert "exported 50 contacts of acme" in err
    rows = list(csv.reader(target.read_text().splitlines()))
    assert rows[0] == ["workspace_id", "period", "contact_key"]
    assert {r[2] for r in rows[1:]} == {d.contact_key for d in batch.decisions}
    assert {r[1] for r in rows[1:]} == {"2026-11"}
    assert len(rows) == 51
    code, out, err = await cli("contacts", "export", "acme", "--json", *conn)
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert {line["contact_key"] for line in lines} == {d.contact_key for d in batch.decisions}
    code, _, err = await cli("contacts", "export", "acme", "--json", "--format", "csv", *conn)
    assert (code, err.strip()) == (2, "error: --json writes JSON lines, not --format csv")


async def test_events_tail(sidecar_app: Sidecar) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    await sidecar_app.enforcer.activate_batch(
        "acme", [ContactFields(id=f"crm-{n}") for n in range(100)]
    )
    code, out, _ = await cli("events", "tail", "acme", "--seconds", "1.5", *conn)
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert "acme  THRESHOLD_CROSSED 80%  2026-11  80 of 100" in lines[0]
    assert "THRESHOLD_CROSSED 100%" in lines[1]
    code, out, _ = await cli("events", "tail", "acme", "--seconds", "1", "--json", *conn)
    first = json.loads(out.splitlines()[0])
    assert (first["type"], first["threshold_percent"], first["active"]) == (
        "TYPE_THRESHOLD_CROSSED",
        80,
        80,
    )


async def test_contacts_key_merge_and_exempt(sidecar_app: Sidecar, tmp_path: Path) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    await sidecar_app.enforcer.activate("acme", ContactFields(email="ana@example.com"))
    await sidecar_app.enforcer.activate("acme", ContactFields(phone="+5511987654321"))

    code, out, _ = await cli("contacts", "key", "acme", "email=ANA@example.com", conn[0])
    assert code == 0
    email_key = out.split()[0]
    assert out.strip().endswith("(counted this period)")
    target = tmp_path / "export.csv"
    await cli("contacts", "export", "acme", "-o", str(target), *conn)
    assert email_key in target.read_text()

    code, out, _ = await cli(
        "contacts",
        "merge",
        "acme",
        "--into",
        "email=ana@example.com",
        "--from",
        "phone=+55 11 98765-4321",
        *conn,
    )
    assert code == 0
    assert out.startswith(f"merged 1 identity into {email_key}; 1 uncounted, 1 of 100 active")
    code, out, _ = await cli("contacts", "key", "acme", "phone=+5511987654321", conn[0])
    assert out.split()[0] == email_key

    code, out, _ = await cli("contacts", "exempt", "acme", "id=bot-1", "id=bot-2", *conn)
    assert code == 0
    assert out.count("exempt") == 2
    code, out, _ = await cli("contacts", "key", "acme", "id=bot-1", conn[0])
    assert out.strip().endswith("(exempt)")

    code, _, err = await cli("contacts", "exempt", "acme", "mail=x", *conn)
    assert code == 2
    assert "expected FIELD=VALUE" in err


async def test_check_batch_says_whether_a_campaign_fits(
    sidecar_app: Sidecar, tmp_path: Path
) -> None:
    addr = f"--addr=127.0.0.1:{sidecar_app.port}"
    await sidecar_app.enforcer.activate_batch(
        "acme", [ContactFields(id=f"crm-{n}") for n in range(99)]
    )
    campaign = tmp_path / "campaign.txt"
    campaign.write_text("# next week's campaign\nid=crm-1\nemail=new1@example.com\n\n")
    code, out, _ = await cli("check-batch", "acme", "id=x2", "--file", str(campaign), addr)
    assert code == 1
    assert "3 contacts: does NOT fit: 1 would be denied" in out
    assert "would count      1" in out
    assert "already active   1" in out
    assert "usage now        99 of 100; after it 100" in out
    code, out, _ = await cli("check-batch", "acme", "id=crm-1", "id=new", addr, "--json")
    assert code == 0
    reply = json.loads(out)
    assert (reply["fits"], reply["admitted"], reply["already_active"]) == (True, 1, 1)
    assert (await sidecar_app.enforcer.usage("acme")).active == 99
    campaign.write_text("id=ok\nnickname=ana\n")
    code, _, err = await cli("check-batch", "acme", "--file", str(campaign), addr)
    assert code == 2
    assert err.startswith(f"error: {campaign}:2: ")
    code, _, err = await cli("check-batch", "acme", addr)
    assert (code, err.strip()) == (2, "error: no contacts: give them as arguments or with --file")


async def test_flood_guard_set_shown_and_cleared(sidecar_app: Sidecar) -> None:
    conn = (f"--addr=127.0.0.1:{sidecar_app.port}", f"--token={ADMIN_TOKEN}")
    code, out, _ = await cli(
        "subscription", "set", "acme", "--plan", "pro", "--flood-guard", "1/hold", *conn
    )
    assert code == 0
    assert "flood guard   1 new contacts a minute, then hold (deny)" in out
    assert (await cli("activate", "acme", "--id", "a", conn[0]))[0] == 0
    code, out, _ = await cli("activate", "acme", "--id", "b", conn[0])
    assert code == 1
    assert "DENIED: RATE_LIMITED" in out
    code, out, _ = await cli("usage", "acme", *conn)
    assert "flood guard 1 new contacts a minute, then hold (deny)" in out
    assert "last flood  2026-11-15 12:00 UTC" in out
    code, out, _ = await cli("subscription", "set", "acme", "--flood-guard", "5/flag", *conn)
    assert "then flag (admit, record the flood)" in out
    code, out, _ = await cli("subscription", "set", "acme", "--clear", "flood-guard", *conn)
    assert (code, "flood guard   none" in out) == (0, True)
    code, _, err = await cli("subscription", "set", "acme", "--flood-guard", "5/drop", *conn)
    assert code == 2
    assert "RATE/ACTION" in err

"""The bench's arithmetic and reports, on made-up runs: no server is started."""

from __future__ import annotations

import asyncio
import json

import pytest

from bench.__main__ import parse_args
from bench.load import Call, Result
from bench.report import as_json, side_by_side, table
from bench.scenarios import ECHO_UNARY
from bench.soak import Sample, mixed, slope_per_minute, verdict

MEMORY = {
    "contacts": 1000.0,
    "used_memory_delta": 63_000.0,
    "bytes_per_contact": 63.0,
    "set_bytes_per_contact": 55.0,
}


def run(name: str, server: str, engine: str, us_per_call: float, p99_ms: float) -> Result:
    """A run of 1,000 calls in one second, ``us_per_call`` of server CPU each."""
    latencies = [int(p99_ms * 1e6)] * 1000
    result = Result(name, calls=1000, seconds=1.0, contacts_per_call=1, latencies_ns=latencies)
    result.cpu = {"server": us_per_call * 1000 / 1e6, "redis": 0.1}
    result.server, result.engine, result.served = server, engine, engine
    return result


def scenario(served: dict[str, str], round_: int = 1) -> list[Result]:
    """One scenario beside both echoes: the grpc.aio echo at 200 µs, the native one at 50."""
    echoes = {
        "grpcio": run(ECHO_UNARY, "echo", "grpcio", 200, 10),
        "native": run(ECHO_UNARY, "echo", "native", 50, 5),
    }
    runs = [
        run("Activate", "sidecar", "grpcio", 400, 20),
        run("Activate", "sidecar", "native", 100, 10),
    ]
    for r in [*echoes.values(), *runs]:
        r.baselines, r.round = echoes, round_
    for r in runs:
        r.served = served[r.engine]
    return runs


def test_efficiency_is_against_each_echo() -> None:
    sidecar = scenario({"grpcio": "grpcio", "native": "native"})[1]
    assert sidecar.efficiency("grpcio") == pytest.approx(2.0)
    assert sidecar.efficiency("native") == pytest.approx(0.5)
    assert sidecar.p99_against("native") == pytest.approx(2.0)


def test_table_groups_each_scenario_under_its_echo_runs() -> None:
    ns = parse_args(["--engines", "grpcio"])
    ns.engines = ["grpcio", "native"]
    results = scenario({"grpcio": "grpcio", "native": "native"})
    text = table(ns, results, MEMORY)
    block = text[text.index("Activate, round 1") :].splitlines()[1:5]
    assert [line.split()[:2] for line in block] == [
        ["echo", "grpcio"],
        ["echo", "native"],
        ["sidecar", "grpcio"],
        ["sidecar", "native"],
    ]
    assert "4.00x" in block[1]  # the native echo spends a quarter of grpc.aio's
    assert "asked" not in text


def test_the_closing_sweep_is_reported_when_measured() -> None:
    ns = parse_args(["--engines", "grpcio"])
    ns.engines = ["grpcio", "native"]
    results = scenario({"grpcio": "grpcio", "native": "native"})
    assert "Closing sweep" not in table(ns, results, MEMORY)
    sweep = {
        "workspaces": 10_000,
        "all_close_s": 1.25,
        "nothing_due_known_s": 0.02,
        "nothing_due_cold_s": 0.5,
    }
    line = table(ns, results, MEMORY, sweep).splitlines()[-1]
    assert line == (
        "Closing sweep over 10,000 workspaces: 1.25 s when every one closes, 20 ms when none "
        "is due (known), 0.50 s for a sweeper that reads them all"
    )
    assert parse_args(["--engines", "grpcio"]).sweep_workspaces == 10_000


def test_the_engines_side_by_side_averages_the_rounds() -> None:
    served = {"grpcio": "grpcio", "native": "native"}
    rows = side_by_side(scenario(served, 1) + scenario(served, 2))
    by_name = {line.split("  ")[0].strip(): line.split() for line in rows[3:]}
    assert by_name[ECHO_UNARY][-5:] == ["200", "50", "4.00x", "10.00", "5.00"]
    assert by_name["Activate"][-5:] == ["400", "100", "4.00x", "20.00", "10.00"]


def test_a_sidecar_that_ignored_its_engine_says_so() -> None:
    ns = parse_args(["--engines", "grpcio"])
    results = scenario({"grpcio": "grpcio", "native": "grpcio"})
    text = table(ns, results, MEMORY)
    assert "sidecar grpcio (asked native)" in text
    assert "! the sidecar asked for native (MAC_GRPC_ENGINE) served with grpcio" in text
    assert all("Activate" not in line for line in side_by_side(results))
    report = json.loads(as_json(ns, results, MEMORY))
    assert report["scenarios"][1]["served"] == "grpcio"
    assert report["scenarios"][1]["efficiency"] == {"grpcio": 2.0, "native": 0.5}


def test_engines_are_checked() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--engines", "grpcio,tornado"])
    assert parse_args(["--engines", "grpcio, grpcio"]).engines == ["grpcio"]


def sample(seconds: float, rss_mib: float, threads: int = 9) -> Sample:
    return Sample(seconds, 1000.0, 0, 1.0, 2.0, 300.0, rss_mib, threads, 20)


def test_a_soak_that_levels_off_is_flat() -> None:
    # grows while the records fill, then stays
    samples = [sample(t, min(80.0 + t / 10, 90.0)) for t in range(5, 605, 5)]
    report = verdict(samples)
    assert report["rss_mib"]["flat"] is True
    assert report["rss_mib"]["first"] == pytest.approx(80.5)
    assert report["threads"]["growth_per_minute"] == 0


def test_a_soak_that_keeps_growing_is_not_flat() -> None:
    samples = [sample(t, 80.0 + t / 60, threads=9 + t // 60) for t in range(5, 605, 5)]
    report = verdict(samples)
    assert report["rss_mib"]["growth_per_minute"] == pytest.approx(1.0)
    assert report["rss_mib"]["flat"] is False
    assert report["threads"]["flat"] is False
    assert slope_per_minute([(0.0, 1.0)]) == 0.0


def test_the_soak_mix_takes_turns_by_share_and_numbers_each_call_kind() -> None:
    made: list[tuple[str, int]] = []

    def kind(name: str) -> Call:
        async def call(i: int) -> str | None:
            made.append((name, i))
            return None

        return call

    call = mixed([("a", kind("a"), 2), ("b", kind("b"), 1)])

    async def make_six() -> None:
        for i in range(6):
            await call(i)

    asyncio.run(make_six())
    assert made == [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("a", 3), ("b", 1)]

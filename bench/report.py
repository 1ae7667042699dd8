"""The bench's results as an aligned text table, or as JSON."""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Iterator
from statistics import fmean

from bench.load import Result
from bench.scenarios import ECHO_STREAM, ECHO_UNARY
from bench.workers import scaling

MEMORY_GOAL = 64.0


def _us(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _times(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def label(r: Result) -> str:
    """What a row measured: ``sidecar native``, ``echo grpcio``, ``echo native stream``; the
    engine is the one the server served with, and the one asked for when it differs."""
    text = f"{r.server} {r.served}"
    if r.name == ECHO_STREAM:
        text += " stream"
    if r.served != r.engine:
        text += f" (asked {r.engine})"
    return text


def groups(results: list[Result]) -> Iterator[tuple[str, list[Result]]]:
    """Each scenario of each round: its heading and its rows, the echo runs first."""
    seen: dict[tuple[str, int], list[Result]] = {}
    for r in results:
        seen.setdefault((r.name, r.round), []).append(r)
    for (name, round_), runs in seen.items():
        echoes = list(runs[0].baselines.values())
        yield f"{name}, round {round_}", echoes + runs


def _aligned(rows: list[list[str]], headings: dict[int, str]) -> list[str]:
    """``rows`` in columns (the first left, the rest right aligned), with a rule under the
    first and each ``headings[i]`` on a line of its own before row ``i``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for i, row in enumerate(rows):
        if i in headings:
            lines.append(headings[i])
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


def _scenario_rows(results: list[Result], echoes: list[str]) -> list[str]:
    head = ["", "calls/s", "contacts/s", "p50 ms", "p99 ms", "µs/call"]
    head += [f"eff/{e}" for e in echoes] + [f"p99/{e}" for e in echoes]
    head += ["cpu redis", "steal"]
    rows, headings = [head], {}
    for heading, runs in groups(results):
        headings[len(rows)] = heading
        for r in runs:
            rows.append(
                [
                    f"  {label(r)}",
                    f"{r.calls_per_second:,.0f}",
                    f"{r.contacts_per_second:,.0f}",
                    _ms(r.percentile_ms(0.50)),
                    _ms(r.percentile_ms(0.99)),
                    _us(r.server_us_per_call),
                    *(_times(r.efficiency(e)) if e in r.baselines else "" for e in echoes),
                    *(_times(r.p99_against(e)) if e in r.baselines else "" for e in echoes),
                    f"{r.cpu['redis']:.0%}" if "redis" in r.cpu else "-",
                    f"{r.steal:.0%}" if r.steal is not None else "-",
                ]
            )
    return _aligned(rows, headings)


def side_by_side(results: list[Result]) -> list[str]:
    """The engines against each other, rounds averaged: each scenario's server CPU per call
    and p99 on grpcio and on native, and how many times less CPU native spent. Empty unless
    both engines ran."""
    by_scenario: dict[str, dict[str, list[Result]]] = {}
    for heading, runs in groups(results):
        name = heading.rsplit(", round ", 1)[0]
        for r in runs:
            key = ECHO_UNARY if r.name == ECHO_UNARY else name
            by_scenario.setdefault(key, {}).setdefault(r.served, []).append(r)
    head = ["", "grpcio µs/call", "native µs/call", "grpcio/native", "grpcio p99", "native p99"]
    rows = [head]
    for name, by_engine in by_scenario.items():
        if set(by_engine) != {"grpcio", "native"}:
            continue
        cpu = {e: fmean(r.server_us_per_call for r in runs) for e, runs in by_engine.items()}
        p99 = {e: fmean(r.percentile_ms(0.99) for r in runs) for e, runs in by_engine.items()}
        rows.append(
            [
                name,
                _us(cpu["grpcio"]),
                _us(cpu["native"]),
                _times(cpu["grpcio"] / cpu["native"]),
                _ms(p99["grpcio"]),
                _ms(p99["native"]),
            ]
        )
    if len(rows) == 1:
        return []
    intro = (
        "The engines side by side, rounds averaged (server CPU per call, and grpcio's over "
        "native's: above 1x, native spends less):"
    )
    return ["", intro, *_aligned(rows, {})]


def table(
    ns: argparse.Namespace,
    results: list[Result],
    memory: dict[str, float],
    sweep: dict[str, float] | None = None,
) -> str:
    """The results as aligned text tables, with the memory and closing sweep lines below."""
    echoes = list(dict.fromkeys(e for r in results for e in r.baselines))
    lines = [
        f"{ns.concurrency} calls in flight, {ns.seconds:g} s measured per run after "
        f"{ns.warmup:g} s warm-up; {os.cpu_count()} CPUs; the sidecar on "
        f"{', '.join(ns.engines)} (grpcio: grpc.aio; native: pygrpc_native). Each scenario "
        "runs right after a unary run of each bare echo server; µs/call = the server's CPU "
        "per call (per message for the streams); eff/E = the bare E echo's CPU per unary call "
        "/ the row's; p99/E = the row's p99 / the E echo's; cpu redis = share of one core; "
        "steal = share of the machine's CPU time its hypervisor gave to others during the run "
        "(high steal makes figures noisy)",
        "",
        *_scenario_rows(results, echoes),
    ]
    for r in results:
        if r.errors:
            lines.append(
                f"! {r.name} ({label(r)}): {r.errors} failed calls, first: {r.first_error}"
            )
    for asked, served in dict.fromkeys((r.engine, r.served) for r in results):
        if served != asked:
            lines.append(f"! the sidecar asked for {asked} (MAC_GRPC_ENGINE) served with {served}")
    lines += side_by_side(results)
    grown = scaling(results)
    if grown:
        lines += ["", *grown]
    per_contact = memory["bytes_per_contact"]
    verdict = "met" if per_contact <= MEMORY_GOAL else "MISSED"
    lines += [
        "",
        f"Redis memory per counted contact: {per_contact:.1f} bytes "
        f"(goal <= {MEMORY_GOAL:g}: {verdict}); used_memory grew "
        f"{memory['used_memory_delta']:,.0f} bytes for {memory['contacts']:,.0f} contacts, "
        f"the members set holds {memory['set_bytes_per_contact']:.1f} bytes per contact",
    ]
    if sweep:
        lines.append(
            f"Closing sweep over {sweep['workspaces']:,.0f} workspaces: "
            f"{sweep['all_close_s']:.2f} s when every one closes, "
            f"{sweep['nothing_due_known_s'] * 1000:.0f} ms when none is due (known), "
            f"{sweep['nothing_due_cold_s']:.2f} s for a sweeper that reads them all"
        )
    return "\n".join(lines)


def _rounded(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def _run(r: Result) -> dict[str, object]:
    return {
        "calls": r.calls,
        "seconds": round(r.seconds, 3),
        "calls_per_second": round(r.calls_per_second, 1),
        "p50_ms": _rounded(r.percentile_ms(0.50)),
        "p99_ms": _rounded(r.percentile_ms(0.99)),
        "server_us_per_call": _rounded(r.server_us_per_call),
        "cpu": {k: round(v, 3) for k, v in r.cpu.items()},
        "steal": _rounded(r.steal) if r.steal is not None else None,
        "errors": r.errors,
        "first_error": r.first_error,
    }


def as_json(
    ns: argparse.Namespace,
    results: list[Result],
    memory: dict[str, float],
    sweep: dict[str, float] | None = None,
) -> str:
    scenarios = [
        {
            "name": r.name,
            "round": r.round,
            "server": r.server,
            "engine": r.engine,
            "served": r.served,
            **_run(r),
            "contacts_per_second": round(r.contacts_per_second, 1),
            "echo": {e: _run(b) for e, b in r.baselines.items()},
            "efficiency": {e: _rounded(r.efficiency(e)) for e in r.baselines},
            "p99_vs_echo": {e: _rounded(r.p99_against(e)) for e in r.baselines},
        }
        for r in results
    ]
    config = {
        "concurrency": ns.concurrency,
        "seconds": ns.seconds,
        "warmup": ns.warmup,
        "engines": ns.engines,
    }
    report = {
        "config": config,
        "scenarios": scenarios,
        "memory": {**memory, "goal_bytes_per_contact": MEMORY_GOAL},
        "closing_sweep": sweep,
    }
    return json.dumps(report, indent=2)

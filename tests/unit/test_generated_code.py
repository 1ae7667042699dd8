"""The generated protobuf code matches proto/ (regenerate with `make proto`)."""

from __future__ import annotations

from pathlib import Path

from tools.gen_proto import DEFAULT_OUT, generate


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "gen"
    fresh = {p.relative_to(out): p.read_text() for p in generate(out)}
    committed = {
        p.relative_to(DEFAULT_OUT): p.read_text()
        for p in DEFAULT_OUT.rglob("*")
        if p.suffix in (".py", ".pyi")
    }
    stale = sorted(
        str(name)
        for name in fresh.keys() | committed.keys()
        if fresh.get(name) != committed.get(name)
    )
    assert not stale, f"generated code is stale, run `make proto`: {stale}"

"""The runnable examples of a Markdown page, and what they are shown to print.

An example is a fenced ``sh`` or ``python`` block right after the line ``<!-- runnable -->``
(``<!-- runnable: exit N -->`` when it ends with status N, like a denial's 1). A ``text``
block right after it, with only blank lines between, shows what it prints: each of its lines,
but ``...``, must appear in the output, in that order. Contact keys, dates and times are
compared by their shape only, as they differ between machines and months.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"<!-- runnable(?:: exit (\d+))? -->")
LANGUAGES = ("sh", "python")
# The addresses of `make run` that the examples name, and what each stands for.
GRPC_ADDR = "127.0.0.1:50051"
METRICS_ADDR = "127.0.0.1:9464"
DEV_REDIS_PORT = "-p 6380"

_SHAPES = (
    (re.compile(r"\b[0-9a-f]{28}\b"), "<contact key>"),
    (re.compile(r"\b\d{4}-\d{2}-\d{2}\b"), "<date>"),
    (re.compile(r"\b\d{4}-\d{2}\b"), "<period>"),
    (re.compile(r"\b\d{2}:\d{2}\b"), "<time>"),
)


@dataclass(frozen=True, slots=True)
class Example:
    """One runnable block of a page."""

    page: str
    line: int
    language: str
    code: str
    exit_status: int
    shown: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"

    def commands(self) -> list[str]:
        """The shell commands of an ``sh`` block, a line ending in ``|`` or ``\\`` joined
        with the next."""
        commands: list[str] = []
        pending = ""
        for raw in self.code.splitlines():
            line = pending + raw.strip()
            if line.endswith(("|", "\\")):
                pending = line.removesuffix("\\") + " "
                continue
            pending = ""
            if line and not line.startswith("#"):
                commands.append(line)
        return commands


def _fence(line: str) -> str | None:
    """The language of a line opening a fenced block, or None."""
    stripped = line.strip()
    return stripped[3:].strip() if stripped.startswith("```") else None


def _block(lines: list[str], start: int) -> tuple[list[str], int]:
    """The lines of the block whose fence opens at ``start``, and the index after its end."""
    end = start + 1
    while end < len(lines) and lines[end].strip() != "```":
        end += 1
    if end == len(lines):
        raise ValueError(f"the block opened at line {start + 1} is never closed")
    return lines[start + 1 : end], end + 1


def examples(path: Path) -> list[Example]:
    """The runnable examples of the page at ``path``, in order."""
    lines = path.read_text().splitlines()
    page = str(path.relative_to(REPO))
    found: list[Example] = []
    for index, line in enumerate(lines):
        marker = MARKER.fullmatch(line.strip())
        if marker is None:
            continue
        language = _fence(lines[index + 1]) if index + 1 < len(lines) else None
        if language not in LANGUAGES:
            raise ValueError(f"{page}:{index + 1}: a runnable marker before no sh or python block")
        code, after = _block(lines, index + 1)
        while after < len(lines) and not lines[after].strip():
            after += 1
        shown: list[str] = []
        if after < len(lines) and _fence(lines[after]) == "text":
            shown, _ = _block(lines, after)
        found.append(
            Example(
                page=page,
                line=index + 2,
                language=language,
                code="\n".join(code) + "\n",
                exit_status=int(marker.group(1) or 0),
                shown=tuple(shown),
            )
        )
    return found


def shape(line: str) -> str:
    """``line`` with what differs between machines and months replaced by its kind."""
    line = line.rstrip()
    for pattern, kind in _SHAPES:
        line = pattern.sub(kind, line)
    return line


def missing_lines(shown: tuple[str, ...], output: str) -> list[str]:
    """The shown lines (but ``...``) that the output lacks, in order; empty when it has all."""
    printed = [shape(line) for line in output.splitlines()]
    position = 0
    missing: list[str] = []
    for line in shown:
        if line.strip() == "...":
            continue
        wanted = shape(line)
        try:
            position = printed.index(wanted, position) + 1
        except ValueError:
            missing.append(line)
    return missing


def pages() -> list[Path]:
    """The README and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

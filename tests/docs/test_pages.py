"""The README is a short door to docs/, and every link between the pages leads somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.examples import REPO, pages

# [text](target) and [text](target "title"); images too. Fenced blocks are left out first.
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCED = re.compile(r"^```.*?^```", flags=re.MULTILINE | re.DOTALL)


def relative_links(page: Path) -> list[str]:
    """The page's links to files of the repository, anchors included."""
    text = FENCED.sub("", page.read_text())
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def anchors(page: Path) -> set[str]:
    """The anchors GitHub gives the page's headings."""
    headings = re.findall(r"^#+ (.+)$", FENCED.sub("", page.read_text()), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("page", pages(), ids=[str(p.relative_to(REPO)) for p in pages()])
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        is_page = resolved.is_file() and resolved.suffix == ".md"
        unknown_anchor = is_page and bool(anchor) and anchor not in anchors(resolved)
        if not resolved.exists() or unknown_anchor:
            broken.append(target)
    assert not broken, f"{page.relative_to(REPO)} links to what does not exist: {broken}"


def test_the_readme_is_at_most_250_lines() -> None:
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, len(lines)


def test_the_readme_links_every_page_of_docs() -> None:
    links = relative_links(REPO / "README.md")
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links}
    unlinked = [page.name for page in pages()[1:] if page.resolve() not in linked]
    assert not unlinked, unlinked

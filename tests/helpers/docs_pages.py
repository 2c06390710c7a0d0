"""Reading the project's Markdown pages (README.md and docs/**/*.md) for the docs tests.

Plain text handling, no Markdown library: fenced code blocks are told apart from prose, links and
images are ``[text](target)`` / ``![alt](target)``, and heading anchors follow GitHub's rule
(lowercase, punctuation dropped, spaces to hyphens, ``-1``, ``-2`` for repeats).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from helpers.paths import ROOT

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
INLINE_CODE = re.compile(r"`([^`\n]+)`")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# `<!-- figures: FILE -->`, `<!-- figures: FILE rows: a, b -->` or `<!-- figures: FILE columns: A, B -->`
# just above a table or paragraph
FIGURES = re.compile(r"<!--\s*figures:\s*(\S+)(?:\s+(rows|columns):\s*([^>]*?))?\s*-->")


def pages() -> list[Path]:
    """README.md and every Markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def split_code(text: str) -> tuple[str, str]:
    """(prose, code): the page without its fenced blocks, and the fenced blocks' lines."""
    prose, code, fenced = [], [], False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        (code if fenced else prose).append(line)
    return "\n".join(prose), "\n".join(code)


def link_targets(text: str) -> list[str]:
    """Targets of the links and images in the prose (inline code and fenced blocks excluded)."""
    prose, _ = split_code(text)
    return LINK.findall(INLINE_CODE.sub("", prose))


def code_text(text: str) -> str:
    """Everything the page shows as code: fenced blocks and inline code spans."""
    prose, code = split_code(text)
    return code + "\n" + "\n".join(INLINE_CODE.findall(prose))


def slug(heading: str) -> str:
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """GitHub's anchors of the page's headings."""
    prose, _ = split_code(text)
    seen: dict[str, int] = {}
    out = set()
    for line in prose.splitlines():
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            n = seen.get(base, 0)
            seen[base] = n + 1
            out.add(base if n == 0 else f"{base}-{n}")
    return out


def expand_braces(path: str) -> list[str]:
    """``src/{a,b}.py`` -> ``src/a.py``, ``src/b.py`` (one level, as the pages write them)."""
    match = re.search(r"\{([^{}]*)\}", path)
    if not match:
        return [path]
    head, tail = path[: match.start()], path[match.end():]
    return [p for part in match.group(1).split(",") for p in expand_braces(head + part + tail)]


def make_targets() -> set[str]:
    """The Makefile's targets (rules and .PHONY names)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*)\s*:(?!=)", text, flags=re.M))
    for line in re.findall(r"^\.PHONY:(.*)$", text, flags=re.M):
        targets |= set(line.split())
    return targets


def figure_blocks(text: str) -> Iterator[tuple[str, str | None, list[str] | None, list[str]]]:
    """(source file, "rows" or "columns" or None, the rows or columns it covers (None: all), the
    lines of the table or paragraph below)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        match = FIGURES.search(line)
        if not match:
            continue
        kind = match.group(2)
        names = [r.strip() for r in match.group(3).split(",")] if kind else None
        yield match.group(1), kind, names, block_below(lines, i)


def block_below(lines: list[str], marker: int) -> list[str]:
    """The table or paragraph just below the marker line ``lines[marker]``: up to the first blank line."""
    block = []
    for following in lines[marker + 1:]:
        if not following.strip():
            break
        block.append(following)
    return block


def marked_blocks(compare: bool) -> list[tuple[Path, str, str | None, list[str] | None, list[str]]]:
    """(page, source, kind, names, block) of every marked block on every page: those quoting a
    compare report (``compare.json``) when ``compare``, else those quoting an evaluate-layout file."""
    return [
        (page, src, kind, names, block)
        for page in pages()
        for src, kind, names, block in figure_blocks(page.read_text(encoding="utf-8"))
        if src.endswith("compare.json") == compare
    ]


def block_id(value: object) -> str | None:
    """A parametrized figures test's id: the page's path (the other parameters get pytest's own)."""
    return str(value.relative_to(ROOT)) if isinstance(value, Path) else None


def table_cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]

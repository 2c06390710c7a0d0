"""README.md is the front door: at most 250 lines, answering in order what this is, how to set up
and run it, what comes out, the usual tasks, and where the depth lives (one docs page a topic)."""

from __future__ import annotations

from conftest import ROOT
from helpers.docs_pages import link_targets

README = ROOT / "README.md"
SECTIONS = ["## Quick start", "## What comes out", "## Usual tasks", "## Where the depth lives"]
PAGES = ["reproducibility", "reliability", "tracking", "data", "distributed", "benchmarks", "configuration"]


def test_the_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move the depth to docs/"


def test_the_readme_answers_in_order() -> None:
    text = README.read_text(encoding="utf-8")
    places = [text.find(s) for s in SECTIONS]
    assert -1 not in places, [s for s, p in zip(SECTIONS, places, strict=True) if p == -1]
    assert places == sorted(places)
    intro = text[: places[0]]
    assert "Headline" in intro and "reports/metrics.json" in intro  # the figure and where it comes from
    quick = text[places[0]: places[1]]
    assert "make repro" in quick and "make test" in quick and "make setup" in quick


def test_every_docs_page_exists_and_the_readme_links_it() -> None:
    linked = set(link_targets(README.read_text(encoding="utf-8")))
    for name in PAGES:
        page = ROOT / "docs" / f"{name}.md"
        assert page.is_file(), page
        assert f"docs/{name}.md" in linked, f"README.md does not link docs/{name}.md"
        first = page.read_text(encoding="utf-8").split("\n## ", 1)[0]
        assert "Read this page" in first, f"docs/{name}.md does not start with what a reader wants from it"

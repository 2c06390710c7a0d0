"""Every relative link and image in README.md and docs/**/*.md resolves: the file or folder exists,
and an anchor (``page.md#section``, ``#section``) names a heading of that page."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ROOT
from helpers.docs_pages import anchors, link_targets, pages

# Files a page may link before they land, each with its reason. Once one exists it is checked
# like any other link; while it is missing the link is allowed only if it is listed here.
PENDING: dict[str, str] = {}


def relative_links(page: Path) -> list[str]:
    return [t for t in link_targets(page.read_text(encoding="utf-8")) if "://" not in t and not t.startswith("mailto:")]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        shown = str(file.relative_to(ROOT)) if file.is_relative_to(ROOT) else str(file)
        if not file.exists():
            if shown not in PENDING:
                broken.append(f"{target}: no {shown}")
            continue
        if anchor and file.suffix == ".md" and anchor not in anchors(file.read_text(encoding="utf-8")):
            broken.append(f"{target}: no heading #{anchor} in {shown}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_link_reader_sees_links_images_and_anchors() -> None:
    # the check above can fail: it finds what the pages link
    readme = relative_links(ROOT / "README.md")
    assert "docs/reproducibility.md" in readme
    tracking = relative_links(ROOT / "docs/tracking.md")
    assert "mlflow-runs.png" in tracking
    assert "#worked-example-a-22-grid-compared-in-dvc-and-in-mlflow" in tracking
    assert "across-machines-make-verify" in anchors((ROOT / "docs/reproducibility.md").read_text(encoding="utf-8"))
    assert not link_targets("`[not a link](nowhere.md)`\n```\n[nor this](nowhere.md)\n```\n")


def test_every_image_in_docs_is_shown_somewhere() -> None:
    shown = {(page.parent / t).resolve() for page in pages() for t in relative_links(page)}
    unused = [p.name for p in sorted((ROOT / "docs").glob("*.png")) if p.resolve() not in shown]
    assert not unused, f"screenshots no page shows: {unused}"

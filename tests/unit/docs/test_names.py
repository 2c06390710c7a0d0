"""Every ``make`` target and every project path (scripts, benchmarks, configs, tests, records) that
README.md and docs/**/*.md show as code exists, so a page never sends a reader to a name that was
renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import ROOT
from helpers.docs_pages import code_text, expand_braces, make_targets, pages

# paths under these folders are the project's own files; outputs (data/, models/, reports/) are not checked
PREFIXES = ("src", "benchmarks", "tests", "conf", "reproducibility", "docs", ".ci")
PATH = re.compile(r"(?<![\w./~-])((?:" + "|".join(re.escape(p) for p in PREFIXES) + r")/[\w./{},+-]*)")
MAKE = re.compile(r"(?<![\w-])make\s+(?:[A-Z_]+=\S*\s+)*([a-z][\w-]*)")
# Paths a page names that are not in the project on purpose, each with its reason.
NOT_IN_PROJECT = {
    "conf/data/my_corpus.yaml": "the dataset file the reader writes (docs/data.md, Train on your own corpus)",
    "docs/results/headline/": "make headline's output folder, written once the headline runs (issue 33) finish",
}


def named_paths(text: str) -> set[str]:
    found = set()
    for raw in PATH.findall(code_text(text)):  # links are test_links.py's
        if any(c in raw for c in "<*"):
            continue  # a pattern (`tests/unit/<subpackage>/test_<module>.py`), not a file
        for path in expand_braces(raw.rstrip(".,")):
            if path.startswith(tuple(p + "/" for p in PREFIXES)):
                found.add(path)
    return found


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_named_exists(page: Path) -> None:
    unknown = sorted(set(MAKE.findall(code_text(page.read_text(encoding="utf-8")))) - make_targets())
    assert not unknown, f"{page.relative_to(ROOT)} names make targets the Makefile lacks: {unknown}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_project_path_named_exists(page: Path) -> None:
    missing = sorted(p for p in named_paths(page.read_text(encoding="utf-8")) if not (ROOT / p).exists())
    missing = [p for p in missing if p not in NOT_IN_PROJECT]
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_name_readers_see_what_the_pages_name() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert {"repro", "test", "setup", "lock", "verify"} <= set(MAKE.findall(code_text(readme)))
    assert {"src/train.py", "src/compare.py"} <= named_paths(readme)
    configuration = (ROOT / "docs/configuration.md").read_text(encoding="utf-8")
    assert "src/verify.py" in named_paths(configuration)  # from src/{download,...,verify}.py
    assert "benchmarks/thread_trace.py" in named_paths((ROOT / "docs/reproducibility.md").read_text(encoding="utf-8"))
    assert named_paths("`src/nowhere.py` and `make lock UPGRADE=--upgrade`") == {"src/nowhere.py"}
    assert MAKE.findall("`make lock UPGRADE=--upgrade`") == ["lock"]
    assert MAKE.findall("`make verify VERIFY_FLAGS=--ci`") == ["verify"]

"""The comparison tables the pages quote (means ± std over seeds, differences against the baseline,
significance) are the committed ``compare.json``'s figures: a block marked
``<!-- figures: docs/results/<table>/compare.json -->`` (optionally ``columns: BLEU, chrF``) is
read by :mod:`helpers.compare_tables`. The headline table of issue 33 is checked this way once
``docs/results/headline/`` is committed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from helpers.compare_tables import load_report, table_problems
from helpers.docs_pages import block_id, marked_blocks


def compare_blocks() -> list[tuple[Path, str, list[str] | None, list[str]]]:
    return [(p, src, names if kind == "columns" else None, block) for p, src, kind, names, block in marked_blocks(True)]


@pytest.mark.parametrize("page, source, columns, block", compare_blocks(), ids=block_id)
def test_quoted_comparisons_equal_the_committed_report(page: Path, source: str, columns, block) -> None:
    assert (ROOT / source).is_file(), f"{page.relative_to(ROOT)} quotes {source}, which is not committed"
    assert block and block[0].lstrip().startswith("|"), f"{page.relative_to(ROOT)}: {source} marks no table"
    problems = table_problems(load_report(ROOT / source), block, columns)
    assert not problems, f"{page.relative_to(ROOT)} against {source}: " + "; ".join(problems)


def test_the_readme_headline_is_the_committed_headline_table() -> None:
    """The README's headline is ``make headline``'s table, marked with its compare.json, every
    system and test set of it (headline.md, as written), so it cannot drift or lose a row."""
    headline = ROOT / "docs" / "results" / "headline"
    blocks = [b for b in compare_blocks() if b[0].name == "README.md" and b[1] == "docs/results/headline/compare.json"]
    assert len(blocks) == 1, "README.md's headline table is not marked with docs/results/headline/compare.json"
    assert blocks[0][3] == (headline / "headline.md").read_text(encoding="utf-8").strip().splitlines()


def test_the_seeds_table_is_checked_and_a_wrong_figure_is_caught() -> None:
    """The 1-epoch seeds table of docs/benchmarks.md is marked, and each kind of mistake is found."""
    blocks = [b for b in compare_blocks() if b[1] == "docs/results/seeds-1epoch/compare.json"]
    assert len(blocks) == 1, "docs/benchmarks.md's seeds table is not marked with its compare.json"
    _, source, columns, block = blocks[0]
    report = load_report(ROOT / source)
    assert table_problems(report, block, columns) == []
    # test_2017_mscoco's bigru_attn row: its test set is the blank cell's, carried down
    row = next(i for i, line in enumerate(block) if "bigru_attn | 14.19" in line)
    mutations = {
        "mean": block[row].replace("| 14.19", "| 14.21", 1),
        "std": block[row].replace("14.19 ± 0.14", "14.19 ± 0.15", 1),
        "delta": block[row].replace("+0.30", "+0.33", 1),
        "star": block[row].replace("+0.30", "+0.30*", 1),
        "p": block[row].replace("(0.25 / 0.68)", "(0.25 / 0.58)", 1),
    }
    for kind, line in mutations.items():
        assert line != block[row], f"the mutation {kind} did not apply to {block[row]!r}"
        changed = [*block[:row], line, *block[row + 1:]]
        assert table_problems(report, changed, columns), f"a wrong {kind} was not caught"
    renamed = [*block[:row], block[row].replace("bigru_attn", "bigru_attn_x", 1), *block[row + 1:]]
    assert any("not in the report" in p for p in table_problems(report, renamed, columns))


def test_the_table_make_headline_writes_is_read_back_exactly() -> None:
    """benchmarks/headline_markdown.py (what the pages paste) writes the layout this check reads."""
    source = ROOT / "docs" / "results" / "seeds-1epoch" / "compare.json"
    made = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "headline_markdown.py"), str(source)],
        capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    report = load_report(source)
    assert len(made) == 2 + sum(len(t["systems"]) for t in report["test_sets"].values())
    assert table_problems(report, made) == []
    assert "bilstm_attn (default)" in made[2] and made[2].endswith("| baseline |")
    wrong = [made[0], made[1], made[2].replace("| 3 |", "| 2 |", 1), *made[3:]]
    assert any("runs" in p for p in table_problems(report, wrong))

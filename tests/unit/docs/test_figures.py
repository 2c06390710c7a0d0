"""The figures the pages quote are the committed result files' figures, so they cannot drift.

A page marks what it quotes with an HTML comment just above a table or paragraph (invisible when
rendered): ``<!-- figures: reports/eval/metrics.json -->``, or ``<!-- figures: FILE rows: a, b -->``
when only some rows of the table come from FILE. FILE has the evaluate stage's layout
(``test_sets.<test set>.<direction>.{bleu,chrf,bleu_tok}``). In a table, the column whose header
starts with "test set" names the row's test set, and the columns "BLEU", "chrF" and "tokenized
BLEU" are compared; in a paragraph, every "<test set> BLEU x, chrF y, tokenized BLEU z" is.
Each quoted figure must equal the file's, rounded to two decimals.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT
from helpers.docs_pages import block_id, marked_blocks, table_cells

COLUMNS = {"bleu": "bleu", "chrf": "chrf", "tokenized bleu": "bleu_tok"}
PHRASE = re.compile(r"(tokenized BLEU|BLEU|chrF)\s+\**(\d+\.\d+)")


def scores(source: str) -> dict[str, dict[str, float]]:
    """{test set: {metric: value}} from an evaluate-layout metrics file (one direction per set)."""
    sets = json.loads((ROOT / source).read_text(encoding="utf-8"))["test_sets"]
    out = {}
    for name, directions in sets.items():
        assert len(directions) == 1, f"{source}: {name} has several directions; name one in the page"
        out[name] = next(iter(directions.values()))
    return out


def number(cell: str) -> float | None:
    match = re.search(r"\d+(?:\.\d+)?", cell.replace("\\*", "").replace("*", ""))
    return float(match.group()) if match else None


def quoted_in_table(block: list[str], known: set[str]) -> list[tuple[str, str, float]]:
    header = [c.lower() for c in table_cells(block[0])]
    test_col = next(i for i, c in enumerate(header) if c.startswith("test set"))
    columns = {i: COLUMNS[c] for i, c in enumerate(header) if c in COLUMNS}
    out = []
    for line in block[2:]:
        cells = table_cells(line)
        name = cells[test_col].strip("`* ").split(" ")[0] if len(cells) > test_col else ""
        if name not in known:
            out.append((name or line, "row", float("nan")))
            continue
        out += [(name, metric, number(cells[i])) for i, metric in columns.items() if number(cells[i]) is not None]
    return out


def quoted_in_paragraph(block: list[str], known: set[str]) -> list[tuple[str, str, float]]:
    text = re.sub(r"\s+", " ", " ".join(block))
    out = []
    for name in known:
        for match in re.finditer(re.escape(name) + r"((?:,?\s+(?:tokenized BLEU|BLEU|chrF)\s+\**\d+\.\d+\**)+)", text):
            out += [(name, COLUMNS[m.lower()], float(v)) for m, v in PHRASE.findall(match.group(1))]
    return out


def quoted(source: str, rows: list[str] | None, block: list[str]) -> list[tuple[str, str, float]]:
    known = set(scores(source))
    if block and block[0].lstrip().startswith("|"):
        found = quoted_in_table(block, known if rows is None else set(rows))
        if rows is not None:  # the other rows of the table come from elsewhere
            found = [q for q in found if q[0] in rows]
        return found
    return quoted_in_paragraph(block, known if rows is None else set(rows))


def marked() -> list[tuple[Path, str, list[str] | None, list[str]]]:
    """The blocks quoting an evaluate-layout file (a compare report's: test_compare_figures.py)."""
    return [(p, src, names if kind == "rows" else None, block) for p, src, kind, names, block in marked_blocks(False)]


@pytest.mark.parametrize("page, source, rows, block", marked(), ids=block_id)
def test_quoted_figures_equal_the_committed_files(page: Path, source: str, rows, block) -> None:
    assert (ROOT / source).is_file(), f"{page.relative_to(ROOT)} quotes {source}, which is not committed"
    table = scores(source)
    found = quoted(source, rows, block)
    assert found, f"{page.relative_to(ROOT)}: the block marked with {source} quotes no figure the test can read"
    wrong = [
        f"{name} {metric}: page {value}, file {table.get(name, {}).get(metric)}"
        for name, metric, value in found
        if metric not in table.get(name, {}) or abs(table[name][metric] - value) >= 0.005
    ]
    assert not wrong, f"{page.relative_to(ROOT)} against {source}: " + "; ".join(wrong)
    if rows is not None:
        assert {q[0] for q in found} == set(rows), f"rows {rows} not all found in the table"


def test_the_readme_headline_is_checked() -> None:
    readme = [(src, block) for p, src, _, block in marked() if p.name == "README.md"]
    # the seed-1 sentence (what dvc.lock holds) here; the headline table (a compare.json) in
    # test_compare_figures.py
    assert any(src == "reports/eval/metrics.json" and not block[0].startswith("|") for src, block in readme), (
        "the README's sentence on the committed reports/ is not marked"
    )
    # and the check reads what a page writes: a wrong figure is caught
    table = ["| test set | BLEU | chrF |", "|---|---|---|", "| test_2016_flickr | **39.45** | 63.86 |"]
    found = quoted("reports/eval/metrics.json", None, table)
    assert ("test_2016_flickr", "bleu", 39.45) in found
    prose = ["test_2016_flickr BLEU 39.44, chrF 63.86, tokenized BLEU", "40.03 (more words)"]
    name = "test_2016_flickr"
    assert sorted(quoted("reports/eval/metrics.json", None, prose)) == [
        (name, "bleu", 39.44), (name, "bleu_tok", 40.03), (name, "chrf", 63.86)
    ]

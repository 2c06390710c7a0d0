"""The decode-setting tables the pages quote (validation BLEU of one run's model under other decode
settings, ``benchmarks/decode_validate.sh``) are the committed files' figures, so they cannot drift.

A page marks such a table with ``<!-- decoding: validation BLEU -->`` just above it. Its first column
names the seed (the run ``transformer-s<seed>``), each other column ``α <value>`` a length penalty;
every figure must equal ``docs/results/transformer-s<seed>/reports/validate-decode-length_penalty-<value>/
metrics.json``'s BLEU, and an empty cell means no such file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT
from helpers.docs_pages import block_below, pages, table_cells

MARKER = re.compile(r"<!--\s*decoding:\s*validation BLEU\s*-->")
RESULTS = ROOT / "docs" / "results"


def decoding_blocks() -> list[tuple[Path, list[str]]]:
    out = []
    for page in pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        out += [(page, block_below(lines, i)) for i, line in enumerate(lines) if MARKER.search(line)]
    return out


def quoted(block: list[str]) -> list[tuple[Path, str]]:
    """(the metrics file a cell names, the cell) for every cell of the table but the seed column."""
    alphas = [cell.removeprefix("α").strip() for cell in table_cells(block[0])[1:]]
    out = []
    for line in block[2:]:
        seed, *cells = table_cells(line)
        for alpha, cell in zip(alphas, cells):
            folder = RESULTS / f"transformer-s{seed}" / "reports" / f"validate-decode-length_penalty-{alpha}"
            out.append((folder / "metrics.json", cell.strip()))
    return out


def test_the_benchmarks_page_quotes_a_decoding_table() -> None:
    assert any(page.name == "benchmarks.md" for page, _ in decoding_blocks())


@pytest.mark.parametrize("page, block", decoding_blocks(), ids=lambda v: v.name if isinstance(v, Path) else None)
def test_a_quoted_decoding_table_is_the_committed_files(page: Path, block: list[str]) -> None:
    cells = quoted(block)
    assert cells, f"{page.relative_to(ROOT)}: an empty decoding table"
    for source, cell in cells:
        if not cell:
            assert not source.exists(), f"{source.relative_to(ROOT)} is committed but its cell is empty"
            continue
        assert source.is_file(), f"{page.relative_to(ROOT)} quotes {source.relative_to(ROOT)}, which is not committed"
        assert float(cell) == round(json.loads(source.read_text())["bleu"], 2), source.relative_to(ROOT)

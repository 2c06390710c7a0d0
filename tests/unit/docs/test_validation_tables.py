"""The validation-curve tables the pages quote are the committed runs' curves, so they cannot drift.

A page marks such a table with ``<!-- curves: docs/results/<table>/validation.md -->`` just above
it. The table must be that file line for line, and the file must be what
``benchmarks/validation_table.py`` makes of the run folders its header names
(``docs/results/<run>/reports/dvclive/plots/metrics/val/bleu.tsv``).
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from helpers.docs_pages import block_below, pages, table_cells

CURVES = re.compile(r"<!--\s*curves:\s*(\S+)\s*-->")
SCRIPT = ROOT / "benchmarks" / "validation_table.py"


def _script():
    spec = importlib.util.spec_from_file_location("validation_table", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def curve_blocks() -> list[tuple[Path, str, list[str]]]:
    """(page, source, the table's lines) of every ``curves:`` marker on every page."""
    out = []
    for page in pages():
        lines = page.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            match = CURVES.search(line)
            if match:
                out.append((page, match.group(1), block_below(lines, i)))
    return out


def remade(source: Path) -> list[str]:
    """The table the script makes of the run folders named in ``source``'s header."""
    runs = table_cells(source.read_text(encoding="utf-8").splitlines()[0])[1:]
    return _script().table([ROOT / "docs" / "results" / run for run in runs])


def test_the_pages_quote_the_headline_curves() -> None:
    sources = {source for _, source, _ in curve_blocks()}
    assert "docs/results/headline/validation.md" in sources


@pytest.mark.parametrize("page, source, block", curve_blocks(), ids=lambda v: v.name if isinstance(v, Path) else None)
def test_a_quoted_curve_table_is_the_committed_file_and_the_runs_curves(page: Path, source: str, block) -> None:
    path = ROOT / source
    assert path.is_file(), f"{page.relative_to(ROOT)} quotes {source}, which is not committed"
    assert block == path.read_text(encoding="utf-8").splitlines(), f"{page.relative_to(ROOT)}: not {source} as written"
    assert remade(path) == block, f"{source} is not what benchmarks/validation_table.py makes of its runs"


def test_a_changed_figure_or_a_lost_epoch_is_caught() -> None:
    path = ROOT / "docs" / "results" / "headline" / "validation.md"
    lines = path.read_text(encoding="utf-8").splitlines()
    made = remade(path)
    assert made == lines
    cells = table_cells(lines[2])
    changed = f"| {cells[0]} | {float(cells[1]) + 0.01:.2f} | " + " | ".join(cells[2:]) + " |"
    assert made != [*lines[:2], changed, *lines[3:]]
    assert made != [*lines[:2], *lines[3:]]


def test_the_best_row_names_the_first_epoch_of_the_best_score(tmp_path: Path) -> None:
    run = tmp_path / "m-s1"
    curve = run / "reports" / "dvclive" / "plots" / "metrics" / "val" / "bleu.tsv"
    curve.parent.mkdir(parents=True)
    # written out of step order: the table orders by step
    curve.write_text("step\tbleu\n20\t30.5\n10\t12.25\n30\t30.5\n", encoding="utf-8")
    assert _script().table([run]) == [
        "| epoch | m-s1 |",
        "|---|---|",
        "| 1 | 12.25 |",
        "| 2 | 30.50 |",
        "| 3 | 30.50 |",
        "| best (epoch) | 30.50 (2) |",
    ]


def test_validated_exports_add_a_row_and_runs_without_one_leave_it_blank(tmp_path: Path) -> None:
    for name, bleu in (("a-s1", "20.0"), ("b-s1", "21.0")):
        curve = tmp_path / name / "reports" / "dvclive" / "plots" / "metrics" / "val" / "bleu.tsv"
        curve.parent.mkdir(parents=True)
        curve.write_text(f"step\tbleu\n10\t{bleu}\n", encoding="utf-8")
    export = tmp_path / "b-s1" / "reports" / "validate-export" / "validation.json"
    export.parent.mkdir(parents=True)
    export.write_text(json.dumps({"val_bleu": 21.456, "val_loss": 2.0, "hypotheses": []}), encoding="utf-8")
    lines = _script().table([tmp_path / "a-s1", tmp_path / "b-s1"])
    assert lines[-2:] == ["| best (epoch) | 20.00 (1) | 21.00 (1) |", "| exported weights |  | 21.46 |"]
    assert _script().table([tmp_path / "a-s1"])[-1] == "| best (epoch) | 20.00 (1) |"


def test_a_run_without_a_curve_is_one_error_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1
    assert str(tmp_path) in done.stderr and not done.stdout

"""Checking a page's table of system comparisons against the ``compare.json`` that ``src/compare.py``
wrote (the headline table, the seeds tables of docs/benchmarks.md).

The table's layout, as the pages write it: a column whose header starts with "test set" (a blank
cell repeats the row above), a "model" or "system" column (its first word is the system's name:
``bilstm_attn (default)``), a "runs" column (the seeds), score columns "BLEU", "chrF" and
"tokenized BLEU" with ``mean ± std`` cells (one run: ``score`` or ``score ± ci95``; ``n/a`` where
the report has none), and significance columns "ΔBLEU ..." / "ΔchrF ..." with ``baseline`` or
``+0.09 (0.38 / 0.95)``: the mean difference against the baseline, ``*`` when every pair of seeds
is significant, and the largest p-values of the paired bootstrap / approximate
randomization. A figure matches when it equals the file's rounded to the decimals the page shows.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from helpers.docs_pages import table_cells

SCORES = {"bleu": "bleu", "chrf": "chrf", "tokenized bleu": "bleu_tok"}
DELTAS = {"δbleu": "bleu", "δchrf": "chrf"}
NUMBER = r"[+\-−]?\d+(?:\.\d+)?"
DELTA_CELL = re.compile(rf"^({NUMBER})(\*?)\s*\(\s*(\d+(?:\.\d+)?)\s*/\s*(\d+(?:\.\d+)?)\s*\)$")


def _float(text: str) -> float:
    return float(text.replace("−", "-"))


def _matches(written: str, actual: float | None) -> bool:
    """``written`` is ``actual`` rounded to the decimals it shows."""
    if actual is None:
        return False
    decimals = len(written.split(".", 1)[1]) if "." in written else 0
    return abs(_float(written) - actual) <= 0.5 * 10**-decimals + 1e-9


def _column(header: str, names: dict[str, str]) -> str | None:
    for prefix, key in names.items():
        if header == prefix or (prefix.startswith("δ") and header.startswith(prefix)):
            return key
    return None


def table_problems(report: dict[str, Any], block: list[str], columns: list[str] | None = None) -> list[str]:
    """What in the table ``block`` differs from ``report`` (a compare.json), one line each; only the
    columns named in ``columns`` (headers, case-insensitive) when given. Empty: every figure matches."""
    header = [c.lower() for c in table_cells(block[0])]
    wanted = {c.lower() for c in columns} if columns else None
    test_col = next(i for i, c in enumerate(header) if c.startswith("test set"))
    system_col = next(i for i, c in enumerate(header) if c in ("model", "system"))
    problems: list[str] = []
    checked = 0
    test_set = ""
    for line in block[2:]:
        cells = table_cells(line)
        test_set = cells[test_col].strip("`* ") or test_set
        system = cells[system_col].strip("`* ").split(" ")[0]
        entries = [v for k, v in report["test_sets"].items() if k.split(" ")[0] == test_set]
        if len(entries) != 1 or system not in entries[0]["systems"]:
            problems.append(f"{test_set} {system}: not in the report")
            continue
        entry = entries[0]["systems"][system]
        for i, head in enumerate(header):
            if wanted is not None and head not in wanted:
                continue
            where = f"{test_set} {system} {head} {cells[i]!r}"
            if head == "runs":
                checked += 1
                if cells[i] != str(entry["bleu"]["n"]):
                    problems.append(f"{where}: file {entry['bleu']['n']} runs")
            elif (metric := _column(head, SCORES)) is not None:
                checked += 1
                score = cells[i].replace("*", "")  # a bold figure
                problems += [f"{where}: file {p}" for p in _score_problems(entry, metric, score)]
            elif (metric := _column(head, DELTAS)) is not None:
                checked += 1
                problems += [f"{where}: file {p}" for p in _delta_problems(entry, metric, cells[i])]
    if not checked:
        problems.append("no figure checked: no score or Δ column (or none of those named)")
    return problems


def _score_problems(entry: dict[str, Any], metric: str, cell: str) -> list[str]:
    stats = entry.get(metric)
    if cell.strip() == "n/a":  # the page says the report has no such score
        return [] if stats is None else [f"has {metric}"]
    if stats is None:
        return [f"has no {metric}"]
    parts = [p.strip() for p in cell.split("±")]
    if not re.fullmatch(NUMBER, parts[0]):
        return [f"{metric} mean {stats['mean']:.2f} (unreadable cell)"]
    out = [] if _matches(parts[0], stats["mean"]) else [f"mean {stats['mean']:.4f}"]
    if len(parts) == 2:
        run = entry["runs"][0].get(metric)  # one run: its bootstrap CI (lc-tok BLEU has none)
        spread = stats["std"] if stats.get("n", 1) > 1 else (run.get("ci95") if isinstance(run, dict) else None)
        if not _matches(parts[1], spread):
            out.append(f"spread {spread}")
    return out


def _delta_problems(entry: dict[str, Any], metric: str, cell: str) -> list[str]:
    versus = entry.get("vs_baseline", {}).get(metric)
    if cell.strip().lower() == "baseline":
        return [] if versus is None else ["is not the baseline"]
    match = DELTA_CELL.match(cell.strip())
    if versus is None or match is None:
        return ["is the baseline" if versus is None else f"Δ {versus['delta_mean']:.2f} (unreadable cell)"]
    delta, star, p_bs, p_ar = match.groups()
    out = []
    if not _matches(delta, versus["delta_mean"]):
        out.append(f"Δ {versus['delta_mean']:.4f}")
    if bool(star) != bool(versus["significant"]):
        out.append(f"significant={versus['significant']}")
    if not _matches(p_bs, versus["p_bs_max"]) or not _matches(p_ar, versus["p_ar_max"]):
        out.append(f"p {versus['p_bs_max']:.4f} / {versus['p_ar_max']:.4f}")
    return out


def load_report(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))

"""The headline table in the compact form the README and docs/benchmarks.md quote, from a
``compare.json`` (``make headline`` writes it beside the full report as ``headline.md``).

One row per (test set, system): BLEU, chrF and lc-tok BLEU as ``mean ± std`` over seeds (one run:
its score), and ΔBLEU against the baseline with ``*`` when every pair of seeds is significant in
both paired tests, and the largest p-values (bootstrap / approximate randomization). The docs
tests read this layout back (``tests/helpers/compare_tables.py``), so a pasted table cannot drift.

    python benchmarks/headline_markdown.py docs/results/headline/compare.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _score(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "n/a"
    if stats.get("std") is None:
        return f"{stats['mean']:.2f}"
    return f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def _p(value: float) -> str:
    return f"{value:.4f}" if value < 0.01 else f"{value:.2f}"


def _delta(versus: dict[str, Any] | None) -> str:
    if versus is None:
        return "baseline"
    d = versus["delta_mean"]
    sign = "+" if d >= 0 else "−"
    star = "*" if versus["significant"] else ""
    return f"{sign}{abs(d):.2f}{star} ({_p(versus['p_bs_max'])} / {_p(versus['p_ar_max'])})"


def table(report: dict[str, Any]) -> str:
    baseline = report["baseline"]
    lines = [
        "| test set | model | runs | BLEU | chrF | tokenized BLEU | ΔBLEU (p bs / ar) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, test_set in report["test_sets"].items():
        name = key.split(" ")[0]
        order = [baseline, *sorted(s for s in test_set["systems"] if s != baseline)]
        for i, system in enumerate(order):
            entry = test_set["systems"][system]
            label = f"{system} (default)" if system == baseline else system
            cells = [
                name if i == 0 else "",
                label,
                str(entry["bleu"]["n"]),
                _score(entry.get("bleu")),
                _score(entry.get("chrf")),
                _score(entry.get("bleu_tok")),
                _delta(entry.get("vs_baseline", {}).get("bleu")),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: headline_markdown.py COMPARE_JSON", file=sys.stderr)
        return 2
    try:
        report = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        print(f"error: {argv[0]}: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

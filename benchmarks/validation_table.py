"""Validation BLEU after every epoch of committed runs, as the Markdown table the pages quote.

Why: a test-set table says where runs ended; the validation curve says whether the budget stopped
them still climbing, and which epoch each would have been chosen at (the project chooses on the
validation set only). Read from each collected run's ``reports/dvclive/plots/metrics/val/bleu.tsv``
(``benchmarks/collect_run.sh``), so anyone re-creates the table from a clone. ``make headline``
writes it beside the comparison as ``validation.md``; the docs tests read it back.

    python benchmarks/validation_table.py docs/results/bilstm_attn-s1 docs/results/transformer_r1-s1 ...

One row per epoch (validation runs once an epoch), one column per run; then each run's best and the
epoch it came at (the first epoch on a tie, as the checkpoint callback keeps it). Where a run was
validated after training by ``benchmarks/search_validate.sh`` (a recipe search), a last row gives
the validation BLEU of its exported weights (``reports/validate-export/validation.json``): with
``train.average_last=N`` the average of the last N epochs, which the curve never saw.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

CURVE = Path("reports") / "dvclive" / "plots" / "metrics" / "val" / "bleu.tsv"
EXPORT = Path("reports") / "validate-export" / "validation.json"


def validation_bleu(run: Path) -> list[float]:
    """The run's validation BLEU in step order, one value an epoch."""
    path = run / CURVE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no validation curve (collect the run with benchmarks/collect_run.sh)")
    with path.open(encoding="utf-8", newline="") as f:
        rows = sorted((int(r["step"]), float(r["bleu"])) for r in csv.DictReader(f, delimiter="\t"))
    return [bleu for _, bleu in rows]


def table(runs: list[Path]) -> list[str]:
    """The Markdown lines: a header, an epoch per row, then each run's best (epoch)."""
    curves = [validation_bleu(run) for run in runs]
    epochs = max(len(c) for c in curves)
    lines = [
        "| epoch | " + " | ".join(run.name for run in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    for e in range(epochs):
        cells = [f"{c[e]:.2f}" if e < len(c) else "" for c in curves]
        lines.append(f"| {e + 1} | " + " | ".join(cells) + " |")
    best = [f"{max(c):.2f} ({c.index(max(c)) + 1})" for c in curves]
    lines.append("| best (epoch) | " + " | ".join(best) + " |")
    exported = [exported_bleu(run) for run in runs]
    if any(b is not None for b in exported):
        lines.append("| exported weights | " + " | ".join("" if b is None else f"{b:.2f}" for b in exported) + " |")
    return lines


def exported_bleu(run: Path) -> float | None:
    """The validation BLEU of the run's exported weights, where search_validate.sh measured it."""
    path = run / EXPORT
    return float(json.loads(path.read_text(encoding="utf-8"))["val_bleu"]) if path.is_file() else None


def main(argv: list[str]) -> int:
    if not argv:
        print("error: usage: validation_table.py RUN_FOLDER [RUN_FOLDER ...]", file=sys.stderr)
        return 2
    try:
        print("\n".join(table([Path(a) for a in argv])))
    except (FileNotFoundError, KeyError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

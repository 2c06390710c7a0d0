"""Writing the comparison: compare.json, compare.md, scores.csv with its dvc plot, MLflow metrics."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from s2s.common.io import atomic_path, write_json_atomic, write_text_atomic
from s2s.evaluation.compare.runs import METRICS


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _score_cell(summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], metric: str) -> str:
    if summary["n"] == 1:
        return f"{_fmt(runs[0][metric]['score'])} ± {_fmt(runs[0][metric]['ci95'])} (95% CI)"
    return f"{_fmt(summary['mean'])} ± {_fmt(summary['std'])} (std, {summary['n']} seeds)"


def _tok_cell(summary: Mapping[str, Any] | None) -> str:
    """lc-tok BLEU as evaluate scored it: one run's score, or mean ± std over seeds; – where absent."""
    if not summary:
        return "–"
    if summary["n"] == 1:
        return _fmt(summary["mean"])
    return f"{_fmt(summary['mean'])} ± {_fmt(summary['std'])}"


def markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# System comparison (baseline: {report['baseline']})",
        "",
        "Cased, detokenized sacreBLEU BLEU and chrF on the raw references. One run: score ± half-width of "
        "its 95% bootstrap confidence interval. Several runs (seeds): mean ± standard deviation over them. "
        "p: paired bootstrap resampling (bs) / approximate randomization (ar) against the baseline, the "
        "largest over all (run, baseline run) pairs; * = significant at "
        f"{report['settings']['alpha']} in both tests for every pair. A pair with identical outputs or "
        "exactly equal scores has p = 1 (no difference to test). lc-tok BLEU: lowercased, Moses-tokenized "
        "BLEU against the official tokenized references, as the evaluate stage scored it (the figure "
        "papers on Multi30k report; not resampled here).",
        "",
    ]
    for key, data in report["test_sets"].items():
        lines += [
            f"## {key} ({data['sentences']} sentences, {data.get('references', 1)} reference(s) each)",
            "",
            "| system | runs | BLEU | chrF | lc-tok BLEU | ΔBLEU | p BLEU (bs / ar) | ΔchrF | p chrF (bs / ar) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for name, entry in data["systems"].items():
            cells = [name, str(entry["bleu"]["n"])]
            cells += [_score_cell(entry[m], entry["runs"], m) for m in METRICS]
            cells.append(_tok_cell(entry.get("bleu_tok")))
            vs = entry.get("vs_baseline")
            for m in METRICS:
                if vs is None:
                    cells += ["baseline", ""]
                else:
                    v = vs[m]
                    star = "*" if v["significant"] else ""
                    cells += [f"{v['delta_mean']:+.2f}{star}", f"{v['p_bs_max']:.4f} / {v['p_ar_max']:.4f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "| run | BLEU (95% CI) | chrF (95% CI) |", "|---|---|---|"]
        for entry in data["systems"].values():
            for run in entry["runs"]:
                cells = [run["run"]] + [f"{_fmt(run[m]['score'])} ± {_fmt(run[m]['ci95'])}" for m in METRICS]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report["skipped_test_sets"]:
        lines += [f"Not in every run, skipped: {', '.join(report['skipped_test_sets'])}.", ""]
    lines += ["Signatures:", ""] + [f"- {k}: `{v}`" for k, v in report["signatures"].items()]
    return "\n".join(lines) + "\n"


PLOT_FIELDS = ("label", "test_set", "system", "run", "bleu", "bleu_ci95", "chrf", "chrf_ci95")


def plot_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (test set, system, run): the data file for ``dvc plots``; ``label`` names the
    row uniquely (a bar of dvc.yaml's compare plot: bars sharing a label would overlap)."""
    rows = []
    for key, data in report["test_sets"].items():
        for name, entry in data["systems"].items():
            for i, run in enumerate(entry["runs"]):
                rows.append(
                    {
                        "label": f"{key} | {name}[{i}]",
                        "test_set": key,
                        "system": name,
                        "run": i,
                        "bleu": round(run["bleu"]["score"], 4),
                        "bleu_ci95": round(run["bleu"]["ci95"], 4),
                        "chrf": round(run["chrf"]["score"], 4),
                        "chrf_ci95": round(run["chrf"]["ci95"], 4),
                    }
                )
    return rows


# reports/compare/dvc.yaml: the chart of scores.csv for `dvc plots show`, declared only where the
# comparison has been written (a plot declared in the project's dvc.yaml fails on every fresh experiment)
PLOTS_YAML = """\
# written by python src/compare.py with scores.csv: `dvc plots show` draws it
plots:
  - compare (BLEU per test set, system and run):
      template: bar_horizontal   # x is the value axis, y the bars
      x: bleu
      y:
        scores.csv: label
"""


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """compare.json, compare.md, scores.csv and the dvc.yaml that plots it, each written atomically."""
    out = Path(out_dir)
    paths = {
        "json": out / "compare.json",
        "markdown": out / "compare.md",
        "plot": out / "scores.csv",
        "plots_yaml": out / "dvc.yaml",
    }
    write_json_atomic(paths["json"], report)
    write_text_atomic(paths["markdown"], markdown(report))
    with atomic_path(paths["plot"]) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PLOT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(plot_rows(report))
    write_text_atomic(paths["plots_yaml"], PLOTS_YAML)
    return paths


def mlflow_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat metrics for MLflow: ``<metric>_mean/<test set>/<system>``, p-values against the baseline."""
    flat: dict[str, float] = {}
    for key, data in report["test_sets"].items():
        ts = key.replace(" ", "/")
        for name, entry in data["systems"].items():
            for m in METRICS:
                flat[f"{m}_mean/{ts}/{name}"] = entry[m]["mean"]
                if entry[m]["std"] is not None:
                    flat[f"{m}_std/{ts}/{name}"] = entry[m]["std"]
                if "vs_baseline" in entry:
                    flat[f"{m}_p_bs/{ts}/{name}"] = entry["vs_baseline"][m]["p_bs_max"]
                    flat[f"{m}_p_ar/{ts}/{name}"] = entry["vs_baseline"][m]["p_ar_max"]
    return flat

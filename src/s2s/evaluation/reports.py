"""The evaluation's figures shaped for their readers: DVC's metrics file, the full numbers, the
report that says how they were made, and MLflow's flat metric names."""

from __future__ import annotations

from typing import Any

from s2s.evaluation.metrics import TOKENIZED_METHOD

SCORES = ("bleu", "chrf", "bleu_tok")
SIGNATURES = ("bleu_signature", "chrf_signature", "bleu_tok_signature")


def split_scores(
    scores: dict[str, dict[str, dict[str, Any]]], primary_name: str, forward: str, decode: str
) -> tuple[dict[str, float], dict[str, Any], dict[str, Any]]:
    """The evaluation's figures as three files: what DVC compares, every score once, and the rest.

    ``reports/metrics.json`` (DVC's metrics: ``dvc exp show`` columns) holds the primary test
    set's BLEU, chrF and tokenized BLEU only; ``reports/eval/metrics.json`` every test set's and
    direction's scores, numbers only; ``reports/eval/report.json`` what says how they were made
    (sacreBLEU signatures, the tokenized-BLEU method, the decoding, sentence and reference counts).
    """
    by_dir = scores[primary_name]
    primary = by_dir.get(forward) or next(iter(by_dir.values()))
    metrics = {k: primary[k] for k in SCORES if k in primary}
    numbers = {
        "test_sets": {n: {d: {k: s[k] for k in SCORES if k in s} for d, s in per.items()} for n, per in scores.items()}
    }
    report = {
        "split": primary_name,
        "direction": forward if forward in by_dir else next(iter(by_dir)),
        "decode": decode,
        **{k: primary[k] for k in SIGNATURES if k in primary},
        **({"bleu_tok_method": TOKENIZED_METHOD} if "bleu_tok" in primary else {}),
        "robustness_search": "greedy",  # robustness.json: greedy decoding whatever decode.* says
        "test_sets": {
            n: {d: {k: v for k, v in s.items() if k not in SCORES} for d, s in per.items()} for n, per in scores.items()
        },
    }
    return metrics, numbers, report


def mlflow_metrics(metrics: dict[str, Any], scores: dict[str, Any], curve: list[dict[str, float]]) -> dict[str, float]:
    """Flat metric names for MLflow: the primary figures, then ``<test set>/<direction>/<metric>``.

    The training run gets them under the evaluation's name too (``test/beam5/bleu``,
    ``test/beam5/test_2017_mscoco/en-de/bleu``), so the runs table can show them beside the params.
    """
    flat = {k: metrics[k] for k in SCORES if k in metrics}
    for set_name, per_dir in scores.items():
        for d, s in per_dir.items():
            for m in SCORES:
                if m in s:
                    flat[f"{set_name}/{d}/{m}"] = s[m]
    # the robustness curve is decoded greedily, whatever the evaluation's own search
    flat.update({f"robust_greedy_bleu/noise_{row['noise']}": row["bleu"] for row in curve})
    return flat

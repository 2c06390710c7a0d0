"""Checks shared by the end-to-end tests."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


def assert_scores_match_translations(scores: dict, translations: Path, direction: str | None = None) -> None:
    """The reported BLEU and chrF are sacreBLEU's on the written detokenized hypotheses and raw
    references, one hypothesis per test sentence, detokenized.  (The tiny preset's model scores
    about 0 BLEU and often emits empty lines, so no quality floor can be asserted on it.)"""

    import sacrebleu

    with open(translations, encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if direction in (None, r["direction"])]
    hyps, refs = [r["hypothesis"] for r in rows], [r["reference"] for r in rows]
    assert len(hyps) == scores.get("sentences", len(hyps)) and hyps
    assert not any("▁" in h for h in hyps), "hypotheses must be detokenized"
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score, abs=0.006)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score, abs=0.006)


def validation_steps(run_dir: Path) -> list[int]:
    """The global steps at which a training run validated, from its DVCLive validation-BLEU curve.

    Lightning logs an epoch-end validation at the index of the epoch's last batch (global step - 1).
    """
    with open(run_dir / "reports/dvclive/plots/metrics/val/bleu.tsv", newline="") as fh:
        return [int(row["step"]) + 1 for row in csv.DictReader(fh, delimiter="\t")]

"""s2s.evaluation.reports: DVC's metrics file holds three numbers, every score is kept once, and the
strings that say how they were made go to the report."""

from __future__ import annotations

from s2s.evaluation.reports import mlflow_metrics, split_scores

from helpers.json_leaves import is_number, leaves

SCORES = {"bleu": 30.0, "chrf": 55.0, "bleu_tok": 31.0}
SIGS = {"bleu_signature": "nrefs:1|case:mixed", "chrf_signature": "nrefs:1|nc:6", "bleu_tok_signature": "nrefs:1|lc"}


def test_evaluation_figures_split_into_metrics_scores_and_report() -> None:
    scores = {
        "set_a": {"en-de": {**SCORES, **SIGS, "references": 1, "sentences": 10}},
        "set_b": {"en-de": {**SCORES, "bleu": 20.0, **SIGS, "references": 2, "sentences": 5}},
    }
    metrics, numbers, report = split_scores(scores, "set_a", "en-de", "beam (beam 5)")
    assert metrics == SCORES  # dvc exp show's columns: three numbers
    assert all(is_number(v) for v in leaves(numbers).values())
    assert set(leaves(numbers)) == {f"test_sets.{s}.en-de.{k}" for s in scores for k in SCORES}  # once each
    assert report["bleu_signature"] == SIGS["bleu_signature"] and report["split"] == "set_a"
    assert report["test_sets"]["set_b"]["en-de"] == {**SIGS, "references": 2, "sentences": 5}
    assert report["robustness_search"] == "greedy"


def test_robustness_metrics_are_named_by_their_search() -> None:
    flat = mlflow_metrics(SCORES, {"s": {"en-de": SCORES}}, [{"noise": 0.0, "bleu": 4.9}])
    assert flat["robust_greedy_bleu/noise_0.0"] == 4.9
    assert not any(k.startswith("robust_bleu") for k in flat)


def test_primary_figures_come_from_the_forward_direction() -> None:
    scores = {"set": {"de-en": {**SCORES, "bleu": 10.0}, "en-de": {**SCORES, "bleu": 20.0}}}
    metrics, _, report = split_scores(scores, "set", "en-de", "beam (beam 5)")
    assert metrics["bleu"] == 20.0 and report["direction"] == "en-de"


def test_every_test_set_score_gets_its_own_mlflow_name() -> None:
    flat = mlflow_metrics(SCORES, {"a": {"en-de": SCORES}, "b": {"de-en": {"bleu": 1.0, "chrf": 2.0}}}, [])
    assert flat["a/en-de/bleu_tok"] == 31.0 and flat["b/de-en/chrf"] == 2.0 and flat["bleu"] == 30.0
    assert "b/de-en/bleu_tok" not in flat

"""The comparison's statistics, all sacreBLEU's own: per-run scores with bootstrap confidence
intervals, mean and standard deviation over seeds, paired bootstrap and approximate randomization
against the baseline (the rules are in :mod:`s2s.evaluation.compare.runs`' module docstring)."""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from s2s.common.io import InputError
from s2s.evaluation.compare.runs import METRICS, System, common_test_sets


@dataclass(frozen=True)
class Settings:
    seed: int = 12345
    bootstrap_samples: int = 1000
    ar_trials: int = 10000
    alpha: float = 0.05
    jobs: int = 1

    def __post_init__(self) -> None:
        # sacreBLEU's PairedTest resamples with `seed if seed else None`: 0 would be a fresh random
        # draw on every call while the report says seed:0
        if self.seed == 0:
            raise InputError(
                "--seed 0: sacreBLEU reads 0 as no seed (other p-values on every call); expected a seed >= 1"
            )
        if self.seed < 0:
            raise InputError(f"--seed {self.seed}: expected a seed >= 1")


def _metrics(references: Sequence[Sequence[str]]) -> dict[str, Any]:
    """sacreBLEU metrics as ``s2s.evaluation.metrics.score_corpus`` configures them, every reference stream cached."""
    from sacrebleu.metrics import BLEU, CHRF

    streams = [list(r) for r in references]
    return {"bleu": BLEU(references=streams), "chrf": CHRF(references=streams)}


def _paired_test(
    named: list[tuple[str, Sequence[str]]],
    references: Sequence[Sequence[str]],
    test_type: str,
    settings: Settings,
) -> dict[str, list[Any]]:
    """sacreBLEU's PairedTest: the first system is the baseline. Returns {metric: [Result, ...]}."""
    from sacrebleu.significance import PairedTest

    os.environ["SACREBLEU_SEED"] = str(settings.seed)  # sacreBLEU's own knob for its resampling seed
    metrics = _metrics(references)
    n = settings.bootstrap_samples if test_type == "bs" else settings.ar_trials
    test = PairedTest(named, metrics, references=None, test_type=test_type, n_samples=n, n_jobs=settings.jobs)
    _, scores = test()
    by_name = {m.__class__.__name__.lower(): key for key, m in test.metrics.items()}
    return {metric: scores[by_name[metric]] for metric in METRICS}


def signatures(settings: Settings) -> dict[str, str]:
    metrics = _metrics([["a"]])
    return {name: str(m.get_signature()) for name, m in metrics.items()} | {
        "resampling": f"sacrebleu.significance.PairedTest seed:{settings.seed}|bs:{settings.bootstrap_samples}"
        f"|ar:{settings.ar_trials}"
    }


def _num(x: Any) -> float | None:
    """sacreBLEU returns numpy scalars (float32 bootstrap means): plain floats for JSON."""
    return None if x is None else float(x)


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def compare_test_set(systems: Sequence[System], key: str, settings: Settings) -> dict[str, Any]:
    """Scores, CIs, mean ± std over runs, and paired tests against ``systems[0]`` on one test set."""
    references = systems[0].runs[0].test_sets[key].references
    out: dict[str, Any] = {"sentences": len(references[0]), "references": len(references), "systems": {}}
    for system in systems:
        runs = []
        for run in system.runs:
            hyps = run.test_sets[key].hypotheses
            result = _paired_test([(run.label, hyps)], references, "bs", settings)
            runs.append(
                {
                    "run": run.label,
                    **{
                        m: {
                            "score": _num(result[m][0].score),
                            "ci95": _num(result[m][0].ci),
                            "bootstrap_mean": _num(result[m][0].mean),
                        }
                        for m in METRICS
                    },
                    "bleu_tok": run.test_sets[key].bleu_tok,
                }
            )
        entry: dict[str, Any] = {"runs": runs}
        for m in METRICS:
            mean, std = _mean_std([r[m]["score"] for r in runs])
            entry[m] = {"mean": mean, "std": std, "n": len(runs)}
        tok = [r["bleu_tok"] for r in runs]
        if all(t is not None for t in tok):  # evaluate scored lc-tok BLEU (tokenized references exist)
            mean, std = _mean_std(tok)
            entry["bleu_tok"] = {"mean": mean, "std": std, "n": len(runs)}
        out["systems"][system.name] = entry

    baseline = systems[0]
    base_entry = out["systems"][baseline.name]
    for system in systems[1:]:
        pairs: dict[str, list[dict[str, Any]]] = {m: [] for m in METRICS}
        for j, base_run in enumerate(baseline.runs):
            named = [(base_run.label, base_run.test_sets[key].hypotheses)] + [
                (run.label, run.test_sets[key].hypotheses) for run in system.runs
            ]
            bs = _paired_test(named, references, "bs", settings)
            ar = _paired_test(named, references, "ar", settings)
            for m in METRICS:
                for i, run in enumerate(system.runs):
                    pair = {"run": i, "baseline_run": j, "p_bs": _num(bs[m][i + 1].p_value)}
                    pair["p_ar"] = _num(ar[m][i + 1].p_value)
                    if run.test_sets[key].hypotheses == base_run.test_sets[key].hypotheses:
                        # identical outputs: there is no difference to test.  sacreBLEU counts only
                        # resamples *above* the observed difference (0 here) and so returns its
                        # smallest p-value, 1/(n+1), as MultEval did (jhclark/multeval issue 5).
                        pair.update(p_bs=1.0, p_ar=1.0, identical=True)
                    elif bs[m][i + 1].score == bs[m][0].score:
                        # different outputs, exactly the same score (e.g. BLEU 0.0 for both): the
                        # same strict count makes a tie look significant; a tie is no difference.
                        pair.update(p_bs=1.0, p_ar=1.0, tie=True)
                    pairs[m].append(pair)
        entry = out["systems"][system.name]
        entry["vs_baseline"] = {}
        for m in METRICS:
            p_bs = max(p["p_bs"] for p in pairs[m])
            p_ar = max(p["p_ar"] for p in pairs[m])
            entry["vs_baseline"][m] = {
                "delta_mean": entry[m]["mean"] - base_entry[m]["mean"],
                "p_bs_max": p_bs,
                "p_ar_max": p_ar,
                "pairs_significant": sum(p["p_bs"] < settings.alpha and p["p_ar"] < settings.alpha for p in pairs[m]),
                "pairs": pairs[m],
                "significant": p_bs < settings.alpha and p_ar < settings.alpha,
            }
    return out


def compare(systems: Sequence[System], settings: Settings) -> dict[str, Any]:
    """The full report (JSON-serialisable); ``systems[0]`` is the baseline."""
    if len(systems) < 2:
        raise InputError("--system: give at least two systems (the first, or --baseline, is the baseline)")
    keys, skipped = common_test_sets(systems)
    return {
        "baseline": systems[0].name,
        "settings": {
            "seed": settings.seed,
            "bootstrap_samples": settings.bootstrap_samples,
            "ar_trials": settings.ar_trials,
            "alpha": settings.alpha,
            "significance_rule": "largest p over all (system run, baseline run) pairs, both tests, < alpha",
        },
        "signatures": signatures(settings),
        "systems": {s.name: [r.label for r in s.runs] for s in systems},
        "test_sets": {key: compare_test_set(systems, key, settings) for key in keys},
        "skipped_test_sets": skipped,
    }

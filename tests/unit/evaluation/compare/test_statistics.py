"""compare's table: lc-tok BLEU read from each run's evaluation, mean ± std over seeds, – where absent."""

from __future__ import annotations

from s2s.evaluation.compare.report import markdown
from s2s.evaluation.compare.runs import Run, System
from s2s.evaluation.compare.runs import TestSet as Scored
from s2s.evaluation.compare.statistics import Settings, compare, compare_test_set

SOURCES = ("a b c", "d e f", "g h i")
REFS = (("Ein Hund läuft .", "Zwei Männer sitzen .", "Eine Frau singt ."),)


def run(label: str, hyps: tuple[str, ...], bleu_tok: float | None) -> Run:
    return Run(label, {"test_2016_flickr en-de": Scored(SOURCES, REFS, hyps, bleu_tok)})


def test_lc_tok_bleu_is_averaged_over_seeds_and_shown_beside_bleu_and_chrf() -> None:
    settings = Settings(bootstrap_samples=20, ar_trials=20)
    base = System("base", [run("b0", REFS[0], 40.0), run("b1", ("Ein Hund .", *REFS[0][1:]), 42.0)])
    other = System("other", [run("o0", ("Ein Hund läuft .", "Zwei sitzen .", "Frau singt ."), 30.0)])
    out = compare_test_set([base, other], "test_2016_flickr en-de", settings)
    assert out["systems"]["base"]["bleu_tok"]["mean"] == 41.0 and out["systems"]["base"]["bleu_tok"]["n"] == 2
    assert [r["bleu_tok"] for r in out["systems"]["base"]["runs"]] == [40.0, 42.0]
    text = markdown(compare([base, other], settings))
    row = next(line for line in text.splitlines() if line.startswith("| base |"))
    assert "| 41.00 ± 1.41 |" in row
    assert "| 30.00 |" in next(line for line in text.splitlines() if line.startswith("| other |"))


def test_a_run_without_lc_tok_bleu_leaves_the_cell_empty() -> None:
    settings = Settings(bootstrap_samples=20, ar_trials=20)
    systems = [System("base", [run("b0", REFS[0], None)]), System("other", [run("o0", REFS[0], 30.0)])]
    out = compare_test_set(systems, "test_2016_flickr en-de", settings)
    assert "bleu_tok" not in out["systems"]["base"] and out["systems"]["other"]["bleu_tok"]["mean"] == 30.0
    assert "| – |" in next(line for line in markdown(compare(systems, settings)).splitlines()
                           if line.startswith("| base |"))

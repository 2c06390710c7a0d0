"""Tiny end to end through the real stage scripts: a user's TSV dataset, the French recipe, and the
evaluate outputs published as one set."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from conftest import SHORT_TRAINING, mirror_pairs, run_script, tiny_paths

pytestmark = pytest.mark.slow

FAST_EVAL = ["decode=greedy", "evaluate.robustness_levels=[0.0]", "logger=none"]


def _pipeline(paths: list[str], *overrides: str) -> dict:
    for stage in ("download", "preprocess", "train", "evaluate"):
        extra = FAST_EVAL if stage == "evaluate" else ["logger=none", SHORT_TRAINING]
        run_script(stage, *paths, *overrides, *extra)
    base = Path(paths[1].split("=", 1)[1]).parent
    return evaluation_report(base / "reports")


def evaluation_report(reports: Path) -> dict:
    """What evaluate wrote, in one dict: the report (split, signatures, counts) with every score in it."""
    report = json.loads((reports / "eval/report.json").read_text())
    scores = json.loads((reports / "eval/metrics.json").read_text())["test_sets"]
    for name, per_dir in scores.items():
        for direction, values in per_dir.items():
            report["test_sets"][name][direction].update(values)
    return {**report, **json.loads((reports / "metrics.json").read_text())}


def test_local_tsv_dataset_end_to_end(tmp_path: Path) -> None:
    """A dataset written as one YAML file around a local TSV file (German first: columns are chosen)."""
    pairs = [f"{d}\t{e}" for e, d in mirror_pairs(900)]
    corpus = tmp_path / "my_corpus.tsv"
    corpus.write_text("\n".join(pairs) + "\n", encoding="utf-8")
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "my_tsv.yaml").write_text(
        textwrap.dedent(f"""\
            name: my_tsv
            src_lang: en
            tgt_lang: de
            sources:
              mine: {{path: {corpus}}}
            split: {{tsv: mine/my_corpus.tsv, columns: {{de: 0, en: 1}}, seed: 3, valid: 50, test: 60}}
            primary_test: test
            """)
    )
    paths = tiny_paths(tmp_path)
    metrics = _pipeline(paths, f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "data=my_tsv")
    assert metrics["split"] == "test" and set(metrics["test_sets"]) == {"test"}
    assert metrics["test_sets"]["test"]["en-de"]["sentences"] == 60
    stats = json.loads((tmp_path / "reports/preprocess.json").read_text())
    assert {k: stats["split"][k] for k in ("seed", "train", "valid", "test")} == {
        "seed": 3,
        "train": 790,
        "valid": 50,
        "test": 60,
    }
    assert stats["split"]["pairs"] == 900 and 0 < stats["split"]["components"] <= 900
    rows = (tmp_path / "reports/eval/translations/test.tsv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 61
    english = {p.split("\t")[1] for p in pairs}
    assert all(r.split("\t")[1] in english for r in rows[1:])  # the English column is the source


def test_french_recipe_end_to_end_and_evaluate_outputs_are_one_set(tmp_path: Path) -> None:
    paths = tiny_paths(tmp_path)
    metrics = _pipeline(paths, "data=multi30k_en_fr", "evaluate.heatmaps=2")
    assert metrics["split"] == "test_2016_flickr"
    assert set(metrics["test_sets"]) == {"test_2016_flickr", "test_2017_mscoco", "test_2018_flickr"}
    for scores in metrics["test_sets"].values():
        assert set(scores) == {"en-fr"}
        assert scores["en-fr"]["sentences"] == 100 and scores["en-fr"]["bleu_tok_signature"].startswith(
            "nrefs:1|case:lc"
        )
    assert metrics["bleu_tok"] == metrics["test_sets"]["test_2016_flickr"]["en-fr"]["bleu_tok"]
    eval_dir = tmp_path / "reports/eval"
    assert sorted(p.name for p in (eval_dir / "attention").iterdir()) == ["test0.png", "test1.png"]
    headline = json.loads((tmp_path / "reports/metrics.json").read_text())
    assert headline == {k: metrics["test_sets"]["test_2016_flickr"]["en-fr"][k] for k in ("bleu", "chrf", "bleu_tok")}

    # fewer heatmaps: no image of the earlier run stays behind
    run_script("evaluate", *paths, "data=multi30k_en_fr", *FAST_EVAL, "evaluate.heatmaps=0")
    assert (eval_dir / "attention").is_dir() and not list((eval_dir / "attention").iterdir())

    # a failing evaluate changes nothing: no new metrics beside an old robustness curve
    before = {p: p.read_bytes() for p in tmp_path.joinpath("reports").rglob("*") if p.is_file()}
    bad = run_script(
        "evaluate",
        *paths,
        "data=multi30k_en_fr",
        "decode=beam",
        "logger=none",
        "evaluate.robustness_levels=[0.0,2.0]",
        check=False,
    )
    assert bad.returncode == 2 and "evaluate.robustness_levels" in bad.stderr and "Traceback" not in bad.stderr
    after = {p: p.read_bytes() for p in tmp_path.joinpath("reports").rglob("*") if p.is_file()}
    assert after == before

"""The tiny preset end to end with reversed pairs and source noise switched on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import SHORT_TRAINING, run_script, tiny_paths
from helpers.e2e_checks import assert_scores_match_translations

pytestmark = pytest.mark.slow


def test_tiny_pipeline_with_reverse_and_noise(tiny_data: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(tiny_data / "raw", tmp_path / "raw")
    paths = tiny_paths(tmp_path)
    aug = ["preprocess.reverse=true", "preprocess.noise.copies=1"]
    run_script("preprocess", *paths, *aug)
    stats = json.loads((tmp_path / "reports/preprocess.json").read_text())
    clean = stats["train"]["pairs_in"]
    assert stats["train"]["pairs_out"] == 4 * clean  # (en->de + de->en) x (clean + 1 noisy copy)
    assert stats["train"]["noise"]["dropped"] > 0 and stats["train"]["noise"]["blanked"] > 0
    assert set(stats["user_defined_symbols"]) == {"<2en>", "<2de>", "<blank>"}

    run_script("train", *paths, *aug, "logger=none", SHORT_TRAINING)
    run_script("evaluate", *paths, *aug, "logger=none", "decode=greedy")
    scores_by_dir = json.loads((tmp_path / "reports/eval/metrics.json").read_text())["test_sets"]["test_2016_flickr"]
    counts = json.loads((tmp_path / "reports/eval/report.json").read_text())["test_sets"]["test_2016_flickr"]
    assert set(scores_by_dir) == {"en-de", "de-en"}
    for direction, scores in scores_by_dir.items():
        assert counts[direction]["sentences"] == 100
        translations = tmp_path / "reports/eval/translations/test_2016_flickr.tsv"
        assert_scores_match_translations({**scores, **counts[direction]}, translations, direction)
    with open(tmp_path / "reports/eval/translations/test_2016_flickr.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    assert {r["direction"] for r in rows} == {"en-de", "de-en"}
    assert not any(r["source"].startswith("<2") for r in rows), "tags are not part of the shown source"
    curve = json.loads((tmp_path / "reports/eval/robustness.json").read_text())["robustness"]
    assert [r["noise"] for r in curve] == [0.0, 0.3]  # the tiny preset's levels

    # the same model and options give the same translations and scores again
    again = tmp_path / "again"
    run_script(
        "evaluate",
        *paths,
        *aug,
        "logger=none",
        "decode=greedy",
        f"paths.reports_dir={again}",
        "evaluate.robustness_levels=[]",
        "evaluate.heatmaps=0",
    )
    name = "eval/translations/test_2016_flickr.tsv"
    assert (again / name).read_bytes() == (tmp_path / "reports" / name).read_bytes()
    assert json.loads((again / "eval/metrics.json").read_text())["test_sets"]["test_2016_flickr"] == scores_by_dir

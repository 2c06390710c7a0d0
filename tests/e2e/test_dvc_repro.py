"""End to end: `dvc repro` of the tiny preset in a fresh git copy of the project, against the mirror."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, SHORT_TRAINING, compose_params, copy_project, mirror_dir
from helpers.e2e_checks import assert_scores_match_translations

pytestmark = pytest.mark.slow



def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    mirror = mirror_dir()
    work = tmp_path_factory.mktemp("project")
    copy_project(work, skip=("reports/", "benchmarks/", "tests/", "dvc.lock"))
    compose_params(work, ["preset=tiny", SHORT_TRAINING])
    env = {**os.environ, "S2S_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"}
    env.pop("HYDRA_FULL_ERROR", None)
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    run([*git, "init", "-q"], work, env)
    run([*git, "add", "-A"], work, env)
    run([*git, "commit", "-qm", "copy"], work, env)
    run(["dvc", "repro"], work, env)
    return work, env


def test_repro_writes_metrics_with_signature(project: tuple[Path, dict[str, str]]) -> None:
    work, _ = project
    metrics = json.loads((work / "reports/metrics.json").read_text())
    assert set(metrics) == {"bleu", "chrf", "bleu_tok"}  # numbers only: what dvc exp show lists
    report = json.loads((work / "reports/eval/report.json").read_text())
    assert report["bleu_signature"].startswith("nrefs:1|case:mixed") and report["robustness_search"] == "greedy"
    lines = (work / "reports/eval/translations/test_2016_flickr.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0].split("\t") == ["direction", "source", "reference", "hypothesis"]
    assert len(lines) == 1 + 100  # max_eval_pairs of the tiny preset
    assert_scores_match_translations(metrics, work / "reports/eval/translations/test_2016_flickr.tsv")
    assert (work / "models/model.pt").is_file()
    assert (work / "dvc.lock").is_file()
    robustness = json.loads((work / "reports/eval/robustness.json").read_text())["robustness"]
    assert [r["noise"] for r in robustness] == [0.0, 0.3]  # the tiny preset's levels


def test_second_repro_does_nothing(project: tuple[Path, dict[str, str]]) -> None:
    work, env = project
    out = run(["dvc", "repro"], work, env).stdout
    assert "didn't change, skipping" in out or "Data and pipelines are up to date" in out
    for stage in ("download", "preprocess", "train", "evaluate"):
        assert f"Running stage '{stage}'" not in out


def test_changing_a_decode_parameter_reruns_only_evaluate(project: tuple[Path, dict[str, str]]) -> None:
    work, env = project
    status = run(["dvc", "status"], work, env).stdout
    assert "changed" not in status
    params = (work / "params.yaml").read_text()
    compose_params(work, ["preset=tiny", SHORT_TRAINING, "decode=greedy"])
    try:
        out = run(["dvc", "repro", "--dry"], work, env).stdout
        assert "Running stage 'evaluate'" in out
        for stage in ("download", "preprocess", "train"):
            assert f"Running stage '{stage}'" not in out
    finally:
        (work / "params.yaml").write_text(params)


def test_the_translator_artifact_is_fetched_and_translates_as_the_docs_write_it(
    project: tuple[Path, dict[str, str]],
) -> None:
    """docs/tracking.md's commands, as written, in the trained project: a version tagged, the DVC
    artifact `translator` fetched, and that folder alone translates, with the data/prepared the
    model was trained with out of the way: it holds its SentencePiece model (issue 34, item 13)."""
    work, env = project
    page = (ROOT / "docs/tracking.md").read_text(encoding="utf-8")
    starts = ("git tag -a translator@", "dvc artifacts get ", "python src/translate.py translate.model=translator ")
    tag, get, translate = (next(line for line in page.splitlines() if line.startswith(s)) for s in starts)
    who = {f"GIT_{role}_{key}": value for role in ("AUTHOR", "COMMITTER")
           for key, value in (("NAME", "test"), ("EMAIL", "test@example.com"))}  # fmt: skip
    env = {**env, **who}
    (work / "in.txt").write_text("A man is riding a bicycle.\n\nTwo dogs play in the snow.\n", encoding="utf-8")
    expected = run(["bash", "-c", "python src/translate.py < in.txt"], work, env).stdout
    run(["git", "add", "-A"], work, env)
    run(["git", "commit", "-qm", "trained"], work, env)
    run(["bash", "-c", tag], work, env)
    run(["bash", "-c", get], work, env)
    assert {"model.pt", "spm.model"} <= {p.name for p in (work / "translator").iterdir()}
    prepared, away = work / "data/prepared", work / "data/prepared.away"
    prepared.rename(away)
    try:
        assert run(["bash", "-c", translate], work, env).stdout == expected
    finally:
        away.rename(prepared)

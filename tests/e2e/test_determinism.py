"""Determinism: `dvc repro` of the tiny preset, twice from scratch in two separate copies of the
project, gives byte-identical metrics, translations and `models/` output (on CPU).

The default preset is bounded by epochs (not wall-clock time) for the same reason; this test
checks the property on the tiny preset, shortened to a few epochs (the property does not depend on
the budget, and the suite stays fast).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from conftest import compose_config, compose_params, copy_project, mirror_dir

SAME_BYTES = [
    "reports/metrics.json",
    "reports/eval/translations/test_2016_flickr.tsv",
    "reports/eval/translations/test_2018_flickr.tsv",
    "data/prepared/spm.model",
]


def fresh_repro(work: Path, mirror: Path) -> Path:
    """A clean git copy of the project at ``work`` (tiny preset), then `dvc repro` in it."""
    copy_project(work, skip=("reports/", "benchmarks/", "tests/", "dvc.lock"))
    compose_params(work, ["preset=tiny", "trainer.max_epochs=3"])
    env = {**os.environ, "S2S_MIRROR": str(mirror), "MLFLOW_TRACKING_URI": f"sqlite:///{work}/mlflow.db"}
    env.pop("HYDRA_FULL_ERROR", None)
    git = ["git", "-c", "user.email=test@example.com", "-c", "user.name=test"]
    for cmd in ([*git, "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "copy"], ["dvc", "repro"]):
        result = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return work


def test_default_budget_is_steps_or_epochs_not_wall_clock() -> None:
    trainer = compose_config([]).trainer
    assert trainer.max_time is None
    assert (trainer.max_epochs or -1) > 0 or (trainer.max_steps or -1) > 0
    # a wall-clock budget stays an option the user chooses
    assert compose_config(["trainer.max_time=00:00:30:00"]).trainer.max_time == "00:00:30:00"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    mirror = mirror_dir()
    return (
        fresh_repro(tmp_path_factory.mktemp("clone_a"), mirror),
        fresh_repro(tmp_path_factory.mktemp("clone_b"), mirror),
    )


@pytest.mark.slow
@pytest.mark.parametrize("path", SAME_BYTES)
def test_outputs_are_byte_identical(two_runs: tuple[Path, Path], path: str) -> None:
    a, b = two_runs
    assert (a / path).read_bytes() == (b / path).read_bytes(), f"{path} differs between two clean runs"


@pytest.mark.slow
def test_model_weights_are_identical(two_runs: tuple[Path, Path]) -> None:
    a, b = (torch.load(w / "models/model.pt", map_location="cpu", weights_only=True) for w in two_runs)
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), f"weight {name} differs between two clean runs"
    # the runs are separate (each its own MLflow run), so nothing above is a shared file
    run_ids = [json.loads((w / "reports/train_run.json").read_text())["run_id"] for w in two_runs]
    assert run_ids[0] and run_ids[0] != run_ids[1]


@pytest.mark.slow
def test_identical_training_gives_a_byte_identical_models_output(two_runs: tuple[Path, Path]) -> None:
    """No run id, time or path inside the cached `models/`: DVC hashes it the same, so a pulled
    model is never retrained and evaluate never re-runs for nothing."""

    def md5_of_models(work: Path) -> str:
        lock = yaml.safe_load((work / "dvc.lock").read_text())
        return next(o["md5"] for o in lock["stages"]["train"]["outs"] if o["path"] == "models")

    a, b = two_runs
    assert md5_of_models(a) == md5_of_models(b)

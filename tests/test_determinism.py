"""Determinism: `dvc repro` of the tiny preset, twice from scratch in two separate copies of the
project, gives byte-identical metrics and translations and identical model weights (on CPU).

The default preset is bounded by epochs (not wall-clock time) for the same reason; this test
checks the property on the tiny preset, whose budget is one epoch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from conftest import ROOT, compose_config, compose_params, mirror_dir

COPY = ["conf", "src", "dvc.yaml", "params.yaml", "pyproject.toml", ".gitignore", ".dvc/config", ".dvcignore"]
SAME_BYTES = [
    "reports/metrics.json",
    "reports/eval/translations/test_2016_flickr.tsv",
    "reports/eval/translations/test_2018_flickr.tsv",
    "data/prepared/spm.model",
]


def fresh_repro(work: Path, mirror: Path) -> Path:
    """A clean git copy of the project at ``work`` (tiny preset), then `dvc repro` in it."""
    for item in COPY:
        src, dest = ROOT / item, work / item
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest)
    compose_params(work, ["preset=tiny"])
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

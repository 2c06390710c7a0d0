"""DDP on CPU with gloo: the code path of multi-GPU training, checked without GPUs."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import torch

from conftest import copy_tiny, run_script
from helpers.e2e_checks import validation_steps
from helpers.tiny_lightning import gradients_of, items


def test_two_ranks_with_accumulation_give_the_union_batch_gradient(tmp_path: Path) -> None:
    """The task's training_step through Lightning's DDP (gloo, 2 processes) and gradient accumulation.

    Four batches of different token counts: 2 ranks x 2 accumulated batches must give exactly the
    gradient of one process with all of them in one batch.
    """
    quarters = [items(0, 2, 3, seed=1), items(2, 4, 8, seed=2), items(6, 3, 5, seed=3), items(9, 1, 12, seed=4)]
    union = gradients_of([[sum(quarters, [])]], tmp_path / "union")
    ddp = gradients_of(
        [quarters[:2], quarters[2:]], tmp_path / "ddp", strategy="ddp_spawn", devices=2, accumulate_grad_batches=2
    )
    assert union.keys() == ddp.keys() and len(union) > 0
    for name, grad in union.items():
        torch.testing.assert_close(ddp[name], grad, rtol=1e-5, atol=1e-7, msg=name)


@pytest.mark.slow
def test_ddp_training_run_and_exact_validation(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    db = f"sqlite:///{tmp_path}/mlflow.db"
    # token batches under DDP: both ranks run the same number of steps, every epoch is validated
    out = run_script(
        "train",
        *paths,
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        "train.batch.max_tokens=400",
        f"logger.tracking_uri={db}",
        "logger.experiment_name=ddp",
    )
    # metrics are synchronised (or already reduced and logged as such): no Lightning advice about it
    assert "sync_dist" not in out.stdout + out.stderr
    steps = validation_steps(tmp_path)
    assert len(steps) == 2 and steps[1] == 2 * steps[0], f"validation rows at steps {steps}"
    # one model, one run file, one MLflow run, one Hydra output folder
    assert (tmp_path / "models/model.pt").is_file()
    assert len(list((tmp_path / "checkpoints").glob("best*.ckpt"))) == 1
    with sqlite3.connect(f"{tmp_path}/mlflow.db") as con:
        assert con.execute("select count(*) from runs").fetchone()[0] == 1
    assert len([p for p in (tmp_path / "hydra").iterdir() if p.name == ".hydra"]) == 1
    run_script("evaluate", *paths, "decode=greedy", f"logger.tracking_uri={db}")

    # the validation set decoded on 2 ranks gives exactly the single-process hypotheses and loss
    model = str(tmp_path / "models/model.pt")
    results = {}
    for name, trainer in (("single", "default"), ("ddp", "ddp_cpu")):
        reports = tmp_path / f"val_{name}"
        run_script(
            "train",
            *paths,
            f"trainer={trainer}",
            "train.validate_only=true",
            f"train.init_from={model}",
            f"paths.reports_dir={reports}",
            f"hydra.run.dir={tmp_path}/hydra_{name}",
            "logger=none",
        )
        results[name] = json.loads((reports / "validation.json").read_text())
    assert len(results["single"]["hypotheses"]) == 100
    assert results["ddp"]["hypotheses"] == results["single"]["hypotheses"]
    assert results["ddp"]["val_bleu"] == results["single"]["val_bleu"]
    # the BLEU the DDP training validated its best checkpoint with is the single-process BLEU of
    # the exported weights (logged as float32, hence the tolerance far below a hypothesis change)
    trained = json.loads((tmp_path / "models/run.json").read_text())["val_bleu"]
    assert trained == pytest.approx(results["single"]["val_bleu"], rel=1e-6, abs=1e-6)
    assert results["ddp"]["val_loss"] == pytest.approx(results["single"]["val_loss"], rel=1e-5)

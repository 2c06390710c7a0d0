"""s2s.training.checkpoints: every checkpoint carries the stamp; step checkpoints only at optimizer steps; a
moved folder keeps its best score and paths."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from s2s.training import checkpoints
from s2s.training.checkpoints import StampCheckpoints, StepBoundaryCheckpoint
from s2s.training.resume import CKPT_KEY

from helpers.fake_trainer import FakeTrainer


def test_every_checkpoint_gets_its_own_copy_of_the_stamp() -> None:
    stamp = StampCheckpoints("fp1", "sha1")
    first, second = {}, {"state_dict": {}}
    stamp.on_save_checkpoint(None, None, first)
    stamp.on_save_checkpoint(None, None, second)
    assert first[CKPT_KEY] == second[CKPT_KEY] == {"fingerprint": "fp1", "spm_sha256": "sha1"}
    first[CKPT_KEY]["fingerprint"] = "changed"
    assert second[CKPT_KEY]["fingerprint"] == "fp1"


def test_step_checkpoints_are_saved_only_after_a_batch_that_stepped(tmp_path: Path, monkeypatch) -> None:
    """With accumulation a window's first batches make no optimizer step: Lightning's step check
    (``global_step % n``) must not run there."""
    reached: list[int] = []

    def lightnings_step_check(self, trainer, *args) -> None:  # where ModelCheckpoint would save
        reached.append(trainer.global_step)

    monkeypatch.setattr(ModelCheckpoint, "on_train_batch_end", lightnings_step_check)
    checkpoint, trainer = StepBoundaryCheckpoint(dirpath=tmp_path, every_n_train_steps=1), FakeTrainer()
    trainer.global_step = 0
    for steps in (False, True, False, True, False):  # windows of two batches, the last one unfinished
        checkpoint.on_train_batch_start(trainer, None, None, 0)
        trainer.global_step += steps
        checkpoint.on_train_batch_end(trainer, None, None, None, 0)
    assert reached == [1, 2]


class ScriptedScore(pl.LightningModule):
    """One weight, two training batches an epoch; validation logs ``scores[epoch]`` as ``val_bleu``."""

    def __init__(self, scores: list[float]):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.scores = scores

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        return (self.weight - batch).pow(2).sum()

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val_bleu", self.scores[self.current_epoch])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.ones(2, 1), batch_size=1)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(torch.ones(1, 1), batch_size=1)


def fit_scripted(folder: Path, scores: list[float], epochs: int, ckpt_path: Path | None = None, moved: bool = True):
    """Lightning's own ModelCheckpoint, as the train stage makes it; ``moved``: with :class:`MovedFolder`."""
    best = ModelCheckpoint(
        dirpath=folder, filename="best", monitor="val_bleu", mode="max", save_top_k=1, save_last=True,
        enable_version_counter=False,
    )
    trainer = pl.Trainer(
        accelerator="cpu", devices=1, logger=False, callbacks=[best, *([checkpoints.MovedFolder()] if moved else [])],
        max_epochs=epochs, num_sanity_val_steps=0, enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(ScriptedScore(scores), ckpt_path=ckpt_path)
    return best


@pytest.mark.parametrize("finished", [False, True], ids=["resumed", "exported_again"])
def test_a_moved_checkpoint_folder_keeps_its_best_score_and_paths(tmp_path: Path, finished: bool) -> None:
    """Issue 34, item 5: Lightning restores the best score and best_k_models only in the folder the
    checkpoint was saved in; moved elsewhere, a worse validation after the resume replaced best.ckpt
    and best_model_path named the old folder's file. The first run is saved without MovedFolder,
    as before it existed: such checkpoints restore in full too."""
    scores = [5.0, 1.0]  # the second epoch is worse: best.ckpt must stay the first's
    first = fit_scripted(tmp_path / "old", scores, epochs=2 if finished else 1, moved=False)
    saved_best = (tmp_path / "old/best.ckpt").read_bytes()
    (tmp_path / "old").rename(tmp_path / "new")  # the old folder is gone
    new = tmp_path / "new"
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*dirpath has changed")
        warnings.filterwarnings("error", message=".*callbacks used to create the checkpoint")
        best = fit_scripted(new, scores, epochs=2, ckpt_path=new / "last.ckpt")
    assert first.best_model_score == best.best_model_score == 5.0
    assert best.best_model_path == str(new / "best.ckpt")
    assert best.best_k_models == {str(new / "best.ckpt"): 5.0}
    assert best.last_model_path == str(new / "last.ckpt")
    assert (new / "best.ckpt").read_bytes() == saved_best, "a worse validation replaced the best checkpoint"


def test_a_checkpoint_from_another_folder_is_lightnings_case(tmp_path: Path) -> None:
    """train.resume=<another folder's checkpoint>: its paths are not taken for this folder's files."""
    fit_scripted(tmp_path / "other", [5.0, 1.0], epochs=1)
    here = ModelCheckpoint(dirpath=tmp_path / "here", monitor="val_bleu", mode="max")
    checkpoint = torch.load(tmp_path / "other/last.ckpt", weights_only=True)
    saved = dict(checkpoint["callbacks"][here.state_key])
    trainer = SimpleNamespace(ckpt_path=str(tmp_path / "other/last.ckpt"), checkpoint_callbacks=[here])
    checkpoints.MovedFolder().on_load_checkpoint(trainer, None, checkpoint)
    assert checkpoint["callbacks"][here.state_key] == saved
    trainer.ckpt_path = str(tmp_path / "here/last.ckpt")  # the same state restored from this folder: moved
    checkpoints.MovedFolder().on_load_checkpoint(trainer, None, checkpoint)
    assert checkpoint["callbacks"][here.state_key]["best_model_path"] == str(tmp_path / "here/best.ckpt")


def test_moved_state_moves_only_the_paths_inside_the_saved_folder() -> None:
    state = {
        "dirpath": "/a/ckpt",
        "best_model_path": "/a/ckpt/best.ckpt",
        "kth_best_model_path": "/a/ckpt/best.ckpt",
        "last_model_path": "/a/ckpt/last.ckpt",
        "best_k_models": {"/a/ckpt/best.ckpt": 3.0, "/elsewhere/x.ckpt": 1.0},
        "best_model_score": 3.0,
    }
    moved = checkpoints.moved_state(state, "/a/ckpt", "/b/c/ckpt")
    assert moved == {
        "dirpath": "/b/c/ckpt",
        "best_model_path": "/b/c/ckpt/best.ckpt",
        "kth_best_model_path": "/b/c/ckpt/best.ckpt",
        "last_model_path": "/b/c/ckpt/last.ckpt",
        "best_k_models": {"/b/c/ckpt/best.ckpt": 3.0, "/elsewhere/x.ckpt": 1.0},
        "best_model_score": 3.0,
    }
    assert checkpoints.moved_state({**state, "best_model_path": "/a/ckpt-other/b.ckpt"}, "/a/ckpt", "/b")[
        "best_model_path"
    ] == "/a/ckpt-other/b.ckpt", "a sibling folder sharing the prefix is not inside"

"""s2s.training.callbacks: a signal saves last.ckpt once and exits 128 + n; every checkpoint carries the stamp;
step checkpoints only at optimizer steps; one line per epoch."""

from __future__ import annotations

import logging
import os
import signal
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader

from s2s.training import callbacks
from s2s.training.callbacks import (
    EpochReport,
    SaveOnSignal,
    StampCheckpoints,
    StepBoundaryCheckpoint,
    TrainingInterrupted,
)
from s2s.training.resume import CKPT_KEY


class FakeTrainer:
    """What the callback uses of a Trainer: one rank, a step count, save_checkpoint recorded."""

    world_size, global_step = 1, 42
    # an epoch of several batches, validated at its end; a test sets is_last_batch at its last one
    current_epoch, check_val_every_n_epoch, num_val_batches = 0, 1, [3]
    is_last_batch, should_stop = False, False

    def __init__(self) -> None:
        self.saved: list[Path] = []

    def save_checkpoint(self, path: Path) -> None:
        self.saved.append(path)


@pytest.fixture
def handlers():
    """The process's handlers for the callback's signals, restored afterwards."""
    before = {sig: signal.getsignal(sig) for sig in SaveOnSignal.SIGNALS}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


def test_exit_code_is_128_plus_the_signal() -> None:
    stop = TrainingInterrupted(signal.SIGTERM)
    assert isinstance(stop, SystemExit) and stop.code == 128 + 15 and stop.signum == signal.SIGTERM
    assert TrainingInterrupted(signal.SIGUSR1).code == 128 + 10


def test_a_signal_saves_last_ckpt_at_the_next_optimizer_step_and_stops(tmp_path: Path, handlers) -> None:
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    module = SimpleNamespace(device="cpu")
    callback.on_train_start(trainer, module)  # where the handlers are installed (Lightning's are replaced)

    def batch(idx: int, steps: bool) -> None:
        callback.on_train_batch_start(trainer, module, None, idx)
        trainer.global_step += steps  # an accumulation window's first batch makes no optimizer step
        callback.on_train_batch_end(trainer, module, None, None, idx)

    batch(0, steps=True)
    assert trainer.saved == []  # no signal yet: training goes on
    os.kill(os.getpid(), signal.SIGUSR1)
    assert callback.received == signal.SIGUSR1  # the handler only records it
    assert trainer.saved == []
    batch(1, steps=False)  # inside a window: its gradient would be lost, so no save yet
    assert trainer.saved == []
    with pytest.raises(TrainingInterrupted) as stop:
        batch(2, steps=True)
    assert stop.value.code == 128 + signal.SIGUSR1
    assert trainer.saved == [tmp_path / "last.ckpt"]
    # Lightning's own SIGTERM path afterwards does not save a second time
    callback.on_exception(trainer, module, SIGTERMException())
    assert trainer.saved == [tmp_path / "last.ckpt"]


def signalled_at_last_batch(tmp_path: Path) -> tuple[SaveOnSignal, FakeTrainer, SimpleNamespace]:
    """A SIGTERM during an epoch's last batch, the batch ended (its validation follows)."""
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    module = SimpleNamespace(device="cpu")
    callback.on_train_start(trainer, module)
    callback.on_train_batch_start(trainer, module, None, 7)
    os.kill(os.getpid(), signal.SIGTERM)
    trainer.global_step += 1
    trainer.is_last_batch = True
    callback.on_train_batch_end(trainer, module, None, None, 7)
    return callback, trainer, module


def test_a_signal_at_an_epochs_last_batch_stops_after_its_validation(tmp_path: Path, handlers) -> None:
    """A checkpoint written at an epoch's last batch, before its validation, resumes into an epoch
    Lightning does not count as started (later resumes replayed batches): the signal is acted on
    at the epoch's end instead, after the validation, whose checkpoint LastCheckpoint writes."""
    callback, trainer, module = signalled_at_last_batch(tmp_path)  # no stop, no save there
    assert trainer.saved == []
    with pytest.raises(TrainingInterrupted) as stop:
        callback.on_train_epoch_end(trainer, module)  # after the validation and its checkpoints
    assert stop.value.code == 128 + signal.SIGTERM
    assert trainer.saved == []  # LastCheckpoint saved at the validation's end
    # with no validation after the batch (check_val_every_n_epoch=2) it saves and stops at once
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    trainer.check_val_every_n_epoch, trainer.is_last_batch = 2, True
    callback.on_train_start(trainer, module)
    callback.on_train_batch_start(trainer, module, None, 7)
    os.kill(os.getpid(), signal.SIGTERM)
    trainer.global_step += 1
    with pytest.raises(TrainingInterrupted):
        callback.on_train_batch_end(trainer, module, None, None, 7)
    assert trainer.saved == [tmp_path / "last.ckpt"]


def test_a_signal_at_the_last_step_of_an_early_stopped_run_lets_it_finish(tmp_path: Path, handlers) -> None:
    callback, trainer, module = signalled_at_last_batch(tmp_path)
    trainer.should_stop = True  # early stopping at this validation: training ends anyway
    callback.on_train_epoch_end(trainer, module)
    assert trainer.saved == []


def test_lightnings_sigterm_exception_saves_once(tmp_path: Path) -> None:
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    callback.on_exception(trainer, None, RuntimeError("not a signal"))
    assert trainer.saved == []
    callback.on_exception(trainer, None, SIGTERMException())
    callback.on_exception(trainer, None, SIGTERMException())
    assert trainer.saved == [tmp_path / "last.ckpt"]


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


class Clock:
    """``time.perf_counter`` as the callback reads it, moved by the test (no waiting)."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


def report_trainer(**fields) -> SimpleNamespace:
    """What EpochReport reads of a Trainer; ``fields`` override the defaults."""
    defaults = dict(global_step=0, max_epochs=13, current_epoch=0, callback_metrics={}, is_global_zero=True,
                    estimated_stepping_batches=4000)  # fmt: skip
    return SimpleNamespace(**{**defaults, **fields})


def test_epoch_line_has_losses_bleu_throughput_elapsed_and_remaining_time(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(callbacks, "time", clock)
    report, trainer = EpochReport(), report_trainer()
    report.on_train_start(trainer, None)
    report.on_train_epoch_start(trainer, None)
    for tps in (1700.0, 1724.0):  # the epoch's mean throughput
        trainer.callback_metrics = {"tokens_per_sec": torch.tensor(tps)}
        report.on_train_batch_end(trainer, None, None, None, 0)
    trainer.global_step, trainer.current_epoch = 1000, 2
    trainer.callback_metrics = {
        "train_loss_epoch": torch.tensor(2.91349),
        "val_loss": torch.tensor(2.70121),
        "val_bleu": torch.tensor(31.4249),
    }
    clock.now += 1022  # 1.022 s per step, 3000 steps left
    assert report.line(trainer) == (
        "epoch 3/13 step 1000 train loss 2.913 val loss 2.701 BLEU 31.42 1,712 tok/s elapsed 17m02s remaining 51m06s"
    )


def test_a_resumed_run_estimates_from_its_own_steps_and_an_open_end_has_no_estimate(monkeypatch) -> None:
    clock = Clock()
    monkeypatch.setattr(callbacks, "time", clock)
    report, trainer = EpochReport(), report_trainer(global_step=500, estimated_stepping_batches=2000)
    report.on_train_start(trainer, None)  # resumed at step 500
    trainer.global_step = 1000
    clock.now += 1000  # 2 s per step of this run, 1000 steps left
    assert report.line(trainer) == "epoch 1/13 step 1000 elapsed 16m40s remaining 33m20s"
    trainer.max_epochs, trainer.estimated_stepping_batches = -1, float("inf")
    clock.now += 2900
    assert report.line(trainer) == "epoch 1 step 1000 elapsed 1h05m"


def test_the_epoch_line_is_logged_by_rank_zero_once_training_started(monkeypatch, caplog) -> None:
    monkeypatch.setattr(callbacks, "time", Clock())
    report, trainer = EpochReport(), report_trainer()
    with caplog.at_level(logging.INFO, logger="train"):
        report.on_train_epoch_end(trainer, None)  # before on_train_start: nothing to report
        report.on_train_start(trainer, None)
        report.on_train_epoch_end(report_trainer(is_global_zero=False), None)
        report.on_train_epoch_end(trainer, None)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("train", "epoch 1/13 step 0 elapsed 0m00s")]


def progress_lines(monkeypatch, caplog, every: int, seconds_per_step: float, steps: int) -> list[str]:
    clock = Clock()
    monkeypatch.setattr(callbacks, "time", clock)
    report = EpochReport()
    trainer = report_trainer(log_every_n_steps=every, estimated_stepping_batches=5889)
    with caplog.at_level(logging.INFO, logger="train"):
        report.on_train_start(trainer, None)
        report.on_train_epoch_start(trainer, None)
        for step in range(1, steps + 1):
            clock.now += seconds_per_step
            trainer.global_step = step
            trainer.callback_metrics = {"tokens_per_sec": torch.tensor(1000.0 + step),
                                        "train_loss_step": torch.tensor(5.0)}
            report.on_train_batch_end(trainer, None, None, None, step - 1)
    return [r.getMessage() for r in caplog.records if r.name == "train"]


def test_a_progress_line_every_log_every_n_steps_before_the_first_epoch_ends(monkeypatch, caplog) -> None:
    lines = progress_lines(monkeypatch, caplog, every=50, seconds_per_step=0.5, steps=120)
    assert [line.split()[3] for line in lines] == ["50/5889", "100/5889"]
    assert lines[0] == "epoch 1/13 step 50/5889 train loss 5.000 1,026 tok/s elapsed 0m25s remaining 48m40s"


def test_a_progress_line_at_least_every_minute_when_steps_are_slow(monkeypatch, caplog) -> None:
    lines = progress_lines(monkeypatch, caplog, every=1000, seconds_per_step=25.0, steps=7)
    assert [line.split()[3] for line in lines] == ["3/5889", "6/5889"]  # 75 s, then 150 s


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
        accelerator="cpu", devices=1, logger=False, callbacks=[best, *([callbacks.MovedFolder()] if moved else [])],
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
    callbacks.MovedFolder().on_load_checkpoint(trainer, None, checkpoint)
    assert checkpoint["callbacks"][here.state_key] == saved
    trainer.ckpt_path = str(tmp_path / "here/last.ckpt")  # the same state restored from this folder: moved
    callbacks.MovedFolder().on_load_checkpoint(trainer, None, checkpoint)
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
    moved = callbacks.moved_state(state, "/a/ckpt", "/b/c/ckpt")
    assert moved == {
        "dirpath": "/b/c/ckpt",
        "best_model_path": "/b/c/ckpt/best.ckpt",
        "kth_best_model_path": "/b/c/ckpt/best.ckpt",
        "last_model_path": "/b/c/ckpt/last.ckpt",
        "best_k_models": {"/b/c/ckpt/best.ckpt": 3.0, "/elsewhere/x.ckpt": 1.0},
        "best_model_score": 3.0,
    }
    assert callbacks.moved_state({**state, "best_model_path": "/a/ckpt-other/b.ckpt"}, "/a/ckpt", "/b")[
        "best_model_path"
    ] == "/a/ckpt-other/b.ckpt", "a sibling folder sharing the prefix is not inside"

"""s2s.training.console: one line per epoch, progress lines between, from rank zero."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch

from s2s.training import console
from s2s.training.console import EpochReport


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
    monkeypatch.setattr(console, "time", clock)
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
    monkeypatch.setattr(console, "time", clock)
    report, trainer = EpochReport(), report_trainer(global_step=500, estimated_stepping_batches=2000)
    report.on_train_start(trainer, None)  # resumed at step 500
    trainer.global_step = 1000
    clock.now += 1000  # 2 s per step of this run, 1000 steps left
    assert report.line(trainer) == "epoch 1/13 step 1000 elapsed 16m40s remaining 33m20s"
    trainer.max_epochs, trainer.estimated_stepping_batches = -1, float("inf")
    clock.now += 2900
    assert report.line(trainer) == "epoch 1 step 1000 elapsed 1h05m"


def test_the_epoch_line_is_logged_by_rank_zero_once_training_started(monkeypatch, caplog) -> None:
    monkeypatch.setattr(console, "time", Clock())
    report, trainer = EpochReport(), report_trainer()
    with caplog.at_level(logging.INFO, logger="train"):
        report.on_train_epoch_end(trainer, None)  # before on_train_start: nothing to report
        report.on_train_start(trainer, None)
        report.on_train_epoch_end(report_trainer(is_global_zero=False), None)
        report.on_train_epoch_end(trainer, None)
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("train", "epoch 1/13 step 0 elapsed 0m00s")]


def progress_lines(monkeypatch, caplog, every: int, seconds_per_step: float, steps: int) -> list[str]:
    clock = Clock()
    monkeypatch.setattr(console, "time", clock)
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

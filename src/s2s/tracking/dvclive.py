"""Training metrics and learning curves for DVC, written by DVCLive's Lightning logger.

DVCLive writes ``<dir>/metrics.json`` (the train stage's metrics in ``dvc exp show``) and one TSV
per logged metric under ``<dir>/plots/metrics/`` (``dvc plots show``); dvc.yaml declares both,
so DVCLive is told not to edit dvc.yaml or save experiments itself. Every point Lightning logs
(``trainer.log_every_n_steps``) becomes a point of the curve, whatever the run's length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from dvclive.lightning import DVCLiveLogger
from pytorch_lightning.callbacks import Callback


def make_logger(out_dir: str | Path, resume: bool = False) -> DVCLiveLogger:
    """DVCLive logger writing into ``out_dir`` (kept across a resumed run, cleared otherwise)."""
    return DVCLiveLogger(dir=str(out_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)


class TrainingSummary(Callback):
    """Adds the figures that compare trainings to DVCLive's summary (the train stage's metrics file).

    ``best_val_bleu`` and ``best_step`` (the step of the best validation), ``total_steps``,
    ``epochs`` and ``train_tokens_per_sec`` (mean of the logged throughput over the run).
    """

    def __init__(self) -> None:
        self.best_bleu: float | None = None
        self.best_step: int | None = None
        self.tps_sum, self.tps_count = 0.0, 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        value = trainer.callback_metrics.get("tokens_per_sec")
        if value is not None:
            self.tps_sum += float(value)
            self.tps_count += 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_bleu")
        if trainer.sanity_checking or value is None:
            return
        if self.best_bleu is None or float(value) > self.best_bleu:
            self.best_bleu, self.best_step = float(value), trainer.global_step

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        summary = {
            "best_val_bleu": self.best_bleu,
            "best_step": self.best_step,
            "total_steps": trainer.global_step,
            "epochs": trainer.current_epoch,
            "train_tokens_per_sec": round(self.tps_sum / self.tps_count, 1) if self.tps_count else None,
        }
        for logger in trainer.loggers:
            if isinstance(logger, DVCLiveLogger):
                logger.experiment.summary.update({k: v for k, v in summary.items() if v is not None})
                logger.experiment.make_summary()

    def state_dict(self) -> dict[str, Any]:
        return {"best_bleu": self.best_bleu, "best_step": self.best_step, "tps": [self.tps_sum, self.tps_count]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_bleu, self.best_step = state.get("best_bleu"), state.get("best_step")
        self.tps_sum, self.tps_count = state.get("tps", [0.0, 0])

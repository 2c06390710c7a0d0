"""Stopping on a signal: SIGTERM, SIGUSR1 (a preempted job's warning) or SIGINT save ``last.ckpt`` at
the next point a resume is exact from, and the process exits 128 + the signal number.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2s.training.checkpoints import OptimizerStepBoundary, validation_follows

log = logging.getLogger(__name__)


class TrainingInterrupted(SystemExit):
    """Training stopped by a signal after saving ``last.ckpt``; the process exits 128 + signal number.

    A ``SystemExit`` so that nothing reports it as success (exit code 143 for SIGTERM, 138 for
    SIGUSR1, 130 for SIGINT): ``train && evaluate``, DVC and schedulers see a failed, resumable stage.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


class SaveOnSignal(OptimizerStepBoundary):
    """On SIGTERM, SIGUSR1 (a preempted SLURM job's warning) or SIGINT (Ctrl-C) save ``last.ckpt`` and
    stop with exit code 128 + the signal number (143, 138, 130).

    Our handler only records the signal; the decision is taken at the end of a batch that completed
    an optimizer step (with ``trainer.accumulate_grad_batches`` > 1 the batches of an unfinished
    window have gradients that no checkpoint holds, so saving there would lose them), agreed by
    every rank (a signal may reach one process only), so the checkpoint is written collectively and
    the next run of the same command resumes exactly there. The handlers are installed when
    training starts, replacing the SIGTERM handler Lightning registers for ``fit`` (it would stop
    mid-window); Lightning restores the previous handlers when ``fit`` ends. A SIGTERM before the
    first batch (during the sanity check) is still Lightning's: that path saves in
    :meth:`on_exception`.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def __init__(self, ckpt_dir: Path):
        self.path = ckpt_dir / "last.ckpt"
        self.received: int | None = None
        self._saved = False
        self._stop_at_epoch_end = 0  # a signal acted on after the epoch's validation

    def _handler(self, signum: int, frame: FrameType | None) -> None:
        self.received = signum

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # after Lightning's own registration (it runs between setup and the fit loop)
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                signal.signal(sig, self._handler)

    def _save_and_stop(self, trainer: pl.Trainer, signum: int, save: bool = True) -> None:
        """Save ``last.ckpt`` (unless ``save`` is False: it was just written) and stop."""
        if not self._saved:
            self._saved = True
            if save:
                trainer.save_checkpoint(self.path)
            log.warning(
                "interrupted by %s at step %d: saved %s; rerun the same command to resume",
                signal.Signals(signum).name,
                trainer.global_step,
                self.path,
            )
        raise TrainingInterrupted(signum)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        signum = self.received or 0
        if trainer.world_size > 1:
            flag = torch.tensor(float(signum), device=pl_module.device)
            signum = int(trainer.strategy.reduce(flag, reduce_op="max").item())
        # the same global step on every rank, so every rank takes the same decision
        if signum and self.stepped(trainer):
            if validation_follows(trainer):
                # LastCheckpoint saves after the validation; stop at the epoch's end
                self._stop_at_epoch_end = signum
            else:
                self._save_and_stop(trainer, signum)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        signum, self._stop_at_epoch_end = self._stop_at_epoch_end, 0
        if not signum:
            return
        if trainer.should_stop:  # early stopping ended training at this validation anyway
            log.warning("%s received at the last step: training has finished", signal.Signals(signum).name)
            return
        self._save_and_stop(trainer, signum, save=False)  # LastCheckpoint saved after the validation

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException) and not self._saved:
            self._saved = True
            trainer.save_checkpoint(self.path)
            log.warning("interrupted by SIGTERM at step %d: saved %s; rerun to resume", trainer.global_step, self.path)

"""Training callbacks: one console line per epoch, save-and-exit on a signal, step-boundary checkpoints,
``last.ckpt`` after every validation, our stamp in every checkpoint, checkpoint state that follows a moved
folder, the model summary."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path, PurePath
from types import FrameType
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, ModelCheckpoint, ModelSummary
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.model_summary import get_formatted_model_size, get_human_readable_count

from s2s.training.resume import CKPT_KEY

log = logging.getLogger(__name__)
train_log = logging.getLogger("train")  # the train stage's console and log file


class TrainingInterrupted(SystemExit):
    """Training stopped by a signal after saving ``last.ckpt``; the process exits 128 + signal number.

    A ``SystemExit`` so that nothing reports it as success (exit code 143 for SIGTERM, 138 for
    SIGUSR1, 130 for SIGINT): ``train && evaluate``, DVC and schedulers see a failed, resumable stage.
    """

    def __init__(self, signum: int):
        super().__init__(128 + signum)
        self.signum = signum


class OptimizerStepBoundary(Callback):
    """Knows whether the batch that just ended completed an optimizer step.

    With gradient accumulation only the last batch of a window steps; a checkpoint taken after any
    other batch would count that batch as consumed while its gradient is not saved.
    """

    _step_at_batch_start = -1

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step_at_batch_start = trainer.global_step

    def stepped(self, trainer: pl.Trainer) -> bool:
        return trainer.global_step != self._step_at_batch_start


def validation_follows(trainer: pl.Trainer) -> bool:
    """The batch that just ended is its epoch's last, and a validation follows it.

    A checkpoint written there (before the validation) resumes wrongly: Lightning restarts the
    next epoch without counting it as started, so a checkpoint saved during that epoch is later
    taken for one of a finished epoch, and its resume replays the epoch's first batches (measured:
    a SIGTERM at the tiny preset's last batch of epoch 1, resume, a SIGTERM 2 steps later, resume:
    2 extra steps and other weights). :class:`LastCheckpoint` saves right after that validation.
    """
    every = trainer.check_val_every_n_epoch
    validates = sum(trainer.num_val_batches) > 0 and (not every or (trainer.current_epoch + 1) % every == 0)
    return bool(trainer.is_last_batch and validates)


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


class MovedFolder(Callback):
    """Restores every ``ModelCheckpoint``'s state in a checkpoint folder that moved.

    Lightning stores the folder's absolute path in each ``ModelCheckpoint``'s state and restores
    ``best_model_score``, ``best_k_models``, ``kth_value`` and ``last_model_path`` only when that
    path is today's ``dirpath``; ``best_model_path`` it restores as saved. In a copy of the project
    (``cp -a``, a tarball, a queue worker) a finished run was then exported again from the old
    folder's ``best.ckpt`` (or failed where that was gone) with ``val_bleu: None``, and a resumed
    run took its next validation for the best whatever it scored (issue 34, item 5).

    Before the states are loaded (``on_load_checkpoint`` runs for every callback first), the state
    of each ``ModelCheckpoint`` whose folder holds the checkpoint being restored gets its saved
    paths moved from the folder they were saved in to today's. A checkpoint from elsewhere
    (``train.resume=<path>`` of another folder) is Lightning's case. The callbacks and their state
    keys stay Lightning's, so checkpoints saved before this callback existed restore in full.
    """

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        states = checkpoint.get("callbacks") or {}
        restoring = trainer.ckpt_path
        if restoring is None:
            return
        folder = os.path.realpath(os.path.dirname(os.path.abspath(str(restoring))))
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key) if isinstance(callback, ModelCheckpoint) else None
            if not isinstance(state, dict) or not callback.dirpath:
                continue
            saved, dirpath = state.get("dirpath"), str(callback.dirpath)
            if saved and saved != dirpath and os.path.realpath(dirpath) == folder:
                states[callback.state_key] = moved_state(state, saved, dirpath)


def moved_state(state: dict[str, Any], saved: str, dirpath: str) -> dict[str, Any]:
    """A ``ModelCheckpoint`` state saved in folder ``saved``, its paths in ``saved`` moved to ``dirpath``."""

    def moved(path: Any) -> Any:
        if not isinstance(path, str) or not path or not PurePath(path).is_relative_to(saved):
            return path
        return str(Path(dirpath) / PurePath(path).relative_to(saved))

    out = {**state, "dirpath": dirpath}
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in out:
            out[key] = moved(out[key])
    if isinstance(out.get("best_k_models"), dict):
        out["best_k_models"] = {moved(k): v for k, v in out["best_k_models"].items()}
    return out


class StepBoundaryCheckpoint(OptimizerStepBoundary, ModelCheckpoint):
    """A ``ModelCheckpoint`` whose step-based saves (``every_n_train_steps``) happen only at the end of
    a batch that completed an optimizer step.

    Lightning's own check is ``global_step % n == 0``, which also holds during the batches of the
    next accumulation window (after a resume it saves there: its last saved step is not restored);
    such a checkpoint counts those batches as consumed while their gradients are lost.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # at an epoch's last batch, LastCheckpoint saves after the validation instead (see validation_follows)
        if self.stepped(trainer) and not validation_follows(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` after every validation, whether or not it improved ``val_bleu``, and at the end
    of training.

    Lightning's monitored checkpoint refreshes ``last.ckpt`` (``save_last``) only when it saved a
    top-k checkpoint at that step, so after a validation that did not improve, ``last.ckpt`` held
    the last periodic save and a resume replayed up to ``train.save_every_n_steps`` steps. This
    callback saves the newest state under that name at each validation, after the best
    checkpoint's own save (it comes after it in the callback list), so its state holds the updated
    best score.

    Both save at the end of validation (``save_on_train_epoch_end=False``), not in
    ``on_train_epoch_end``: a checkpoint written there holds the epoch as processed but not
    completed, and with a step budget (``trainer.max_steps``) Lightning's resume from it counted
    the epoch twice. The sampler then drew the next epoch's batches one epoch early and
    ``max_epochs`` came an epoch early (the tiny preset killed at its first epoch's end, then
    resumed: other weights, step 50 instead of 57). A run whose step budget ends mid-epoch has no
    validation at its last step; ``on_train_end`` saves that last state.
    """

    def __init__(self, dirpath: Path):
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        )
        self._saved_step = -1  # the global step of the latest checkpoint of any callback

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # every save at a step also writes last.ckpt (periodic, signal) or follows this callback's
        # own save at a validation (best.ckpt), so a save at this step means last.ckpt is current
        self._saved_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._saved_step and not trainer.sanity_checking:
            trainer.save_checkpoint(Path(self.dirpath) / "last.ckpt")


class StampCheckpoints(Callback):
    """Writes the run's fingerprint and vocabulary hash into every checkpoint.

    Resume and export check it, so a checkpoint of another configuration (another process in the
    same folder, a stale file) is never resumed or exported under this run's config.
    """

    def __init__(self, fingerprint: str, spm_sha256: str):
        self.stamp = {"fingerprint": fingerprint, "spm_sha256": spm_sha256}

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_KEY] = dict(self.stamp)


class ParameterSummary(ModelSummary):
    """Lightning's model summary without its FLOPs column and total.

    Lightning counts FLOPs only for a module with an ``example_input_array`` (a translation model
    has none: its inputs are batches of varying shape) and prints ``Total FLOPs: 0`` otherwise,
    which reads as a broken model. The table goes to the train stage's log, like the epoch lines.
    """

    @staticmethod
    def summarize(
        summary_data: list[tuple[str, list[str]]],
        total_parameters: int,
        trainable_parameters: int,
        model_size: float,
        total_training_modes: dict[str, int],
        total_flops: int = 0,
        **summarize_kwargs: Any,
    ) -> None:
        train_log.info(
            "\n%s",
            parameter_table(summary_data, total_parameters, trainable_parameters, model_size, total_training_modes),
        )


def parameter_table(
    summary_data: list[tuple[str, list[str]]],
    total_parameters: int,
    trainable_parameters: int,
    model_size: float,
    total_training_modes: dict[str, int],
) -> str:
    """The layers (name, type, parameters, mode) and the totals, as Lightning words them."""
    columns = [(name, [str(v) for v in values]) for name, values in summary_data if name != "FLOPs"]
    widths = [max(len(name), *(len(v) for v in values)) for name, values in columns]
    rows = [[name for name, _ in columns], *zip(*(values for _, values in columns), strict=True)]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    rule = "-" * max(len(line) for line in lines)
    totals = [
        (get_human_readable_count(trainable_parameters), "Trainable params"),
        (get_human_readable_count(total_parameters - trainable_parameters), "Non-trainable params"),
        (get_human_readable_count(total_parameters), "Total params"),
        (get_formatted_model_size(model_size), "Total estimated model params size (MB)"),
        (str(total_training_modes["train"]), "Modules in train mode"),
        (str(total_training_modes["eval"]), "Modules in eval mode"),
    ]
    return "\n".join([lines[0], rule, *lines[1:], rule, *(f"{value:<10} {what}" for value, what in totals)])


def _duration(seconds: float) -> str:
    """``17m02s``, ``1h05m``: short enough for a log line, exact enough to plan by."""
    seconds = max(0, round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


# a progress line at least this often (seconds), and at least every trainer.log_every_n_steps steps
PROGRESS_EVERY_S = 60.0


class EpochReport(Callback):
    """One line per epoch on the ``train`` logger (rank 0), so a long run says where it is.

    Between epochs a progress line every ``trainer.log_every_n_steps`` optimizer steps or every
    :data:`PROGRESS_EVERY_S` seconds, whichever comes first (an epoch of the default run is half
    an hour on a CPU, and a log that is not a terminal has no progress bar):
    ``epoch 1/13 step 150/5889 train loss 5.123 1,105 tok/s elapsed 2m10s remaining 1h24m``.

    ``epoch 3/13 step 1362 train loss 2.913 val loss 2.701 BLEU 31.42 1,712 tok/s elapsed 17m02s
    remaining 56m50s``: the epoch's mean training loss, the latest validation, the mean training
    throughput in target tokens per second (all ranks), and the remaining time estimated from this
    process's steps per second over the steps left (``trainer.estimated_stepping_batches``).
    """

    def __init__(self) -> None:
        self._start: float | None = None
        self._start_step = 0
        self._tps: list[float] = []
        self._last_line = (0, 0.0)  # (step, time) of the last progress line

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._start, self._start_step = time.perf_counter(), trainer.global_step
        self._last_line = (trainer.global_step, self._start)

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._tps = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        value = trainer.callback_metrics.get("tokens_per_sec")
        if value is not None and trainer.is_global_zero:
            self._tps.append(float(value))
        if not trainer.is_global_zero or self._start is None:
            return
        step, now = trainer.global_step, time.perf_counter()
        every = int(getattr(trainer, "log_every_n_steps", 50) or 50)
        last_step, last_time = self._last_line
        if step > last_step and (step - last_step >= every or now - last_time >= PROGRESS_EVERY_S):
            self._last_line = (step, now)
            train_log.info("%s", self.line(trainer, progress=True, window=max(1, step - last_step)))

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero or self._start is None:
            return
        train_log.info("%s", self.line(trainer))

    def line(self, trainer: pl.Trainer, progress: bool = False, window: int | None = None) -> str:
        """The epoch line, or (``progress``) the line between epochs: total steps, the latest
        step's loss and the throughput of the last ``window`` batches."""
        metrics = trainer.callback_metrics
        step, epochs = trainer.global_step, trainer.max_epochs
        total = trainer.estimated_stepping_batches
        parts = [f"epoch {trainer.current_epoch + 1}" + (f"/{epochs}" if epochs and epochs > 0 else "")]
        parts.append(f"step {step}" + (f"/{int(total)}" if progress and total != float("inf") else ""))
        tps = self._tps[-window:] if window else self._tps
        for key, label, digits in (
            ("train_loss_step" if progress else "train_loss_epoch", "train loss", 3),
            ("val_loss", "val loss", 3),
            ("val_bleu", "BLEU", 2),
        ):
            if key in metrics:
                parts.append(f"{label} {float(metrics[key]):.{digits}f}")
        if tps:
            parts.append(f"{sum(tps) / len(tps):,.0f} tok/s")
        elapsed = time.perf_counter() - (self._start or time.perf_counter())
        parts.append(f"elapsed {_duration(elapsed)}")
        done, total = step - self._start_step, trainer.estimated_stepping_batches
        if done > 0 and total != float("inf"):
            parts.append(f"remaining {_duration(elapsed / done * max(0, int(total) - step))}")
        return " ".join(parts)

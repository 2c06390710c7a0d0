"""What the train stage prints: the model summary (without Lightning's FLOPs) and one line per epoch,
with progress lines between.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelSummary
from pytorch_lightning.utilities.model_summary import get_formatted_model_size, get_human_readable_count

train_log = logging.getLogger("train")  # the train stage's console and log file


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

"""Optimiser and learning-rate schedule from the ``optim`` config (conf/optim/*.yaml), without Lightning.

The schedule is a pure function of the optimizer step (:func:`lr_at`), so it is testable without a
Trainer; :func:`configure_optimizers` wraps it in the objects Lightning steps.  The cosine decay
needs the run's length, which only the Trainer knows: the task passes it as a callable, asked
only when the schedule is cosine (a time-budgeted run has none, and says so).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
SCHEDULES = ("constant", "plateau", "inverse_sqrt", "cosine")


def make_optimizer(params: Iterable[torch.nn.Parameter], cfg: Mapping[str, Any]) -> torch.optim.Optimizer:
    if cfg["name"] not in OPTIMIZERS:
        raise ValueError(f"optim.name={cfg['name']!r}: expected one of {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[cfg["name"]](
        params,
        lr=cfg["lr"],
        betas=tuple(cfg.get("betas", (0.9, 0.999))),
        weight_decay=cfg.get("weight_decay", 0.0),
    )


def lr_factor(step: int, cfg: Mapping[str, Any], total_steps: int = 1) -> float:
    """The multiple of ``cfg["lr"]`` at optimizer step ``step`` (0-based) for the step-wise schedules.

    Linear warmup over ``warmup_steps``, then constant, ``sqrt(warmup / step)`` (inverse_sqrt) or
    a cosine decay that reaches ``min_lr`` at ``total_steps``.  The plateau schedule is not
    step-wise (see :func:`lr_at`).
    """
    schedule, warmup = cfg.get("scheduler", "constant"), int(cfg.get("warmup_steps", 0))
    if warmup and step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    if schedule == "inverse_sqrt":
        return math.sqrt(max(warmup, 1) / (step + 1))
    if schedule == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        floor = cfg.get("min_lr", 0.0) / cfg["lr"]
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"optim.scheduler={schedule!r}: expected {', '.join(SCHEDULES)}")


def plateau_warmup_lr(step: int, cfg: Mapping[str, Any]) -> float | None:
    """The plateau schedule's linear warmup lr at ``step``, or None once warmup is over (or for
    the other schedules, whose warmup is part of :func:`lr_factor`)."""
    warmup = int(cfg.get("warmup_steps", 0))
    if cfg.get("scheduler") == "plateau" and step < warmup:
        return cfg["lr"] * (step + 1) / warmup
    return None


def lr_at(step: int, cfg: Mapping[str, Any], total_steps: int = 1) -> float:
    """The learning rate of optimizer step ``step``; for plateau, before any reduction on plateau."""
    if cfg.get("scheduler", "constant") == "plateau":
        warm = plateau_warmup_lr(step, cfg)
        return cfg["lr"] if warm is None else warm
    return cfg["lr"] * lr_factor(step, cfg, total_steps)


def make_plateau(optimizer: torch.optim.Optimizer, cfg: Mapping[str, Any]) -> ReduceLROnPlateau:
    """The plateau schedule: halve (``factor``) the rate after ``patience`` validations without a
    BLEU gain.

    The training task steps it itself at the end of each epoch's validation, before the checkpoints
    of that validation are written (:class:`s2s.training.task.TranslationTask`), not Lightning: its
    ``interval: epoch`` step comes after the epoch-end checkpoints, and a run resumed from one of
    them skips it (Lightning does not step an epoch scheduler while restarting, and has no metric
    to step it with), so the resumed run's rate differed from an uninterrupted run's.
    """
    return ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=cfg.get("factor", 0.5),
        patience=cfg.get("patience", 1),
        min_lr=cfg.get("min_lr", 1e-5),
    )


def configure_optimizers(
    params: Iterable[torch.nn.Parameter], cfg: Mapping[str, Any], total_steps: Callable[[], int]
) -> dict[str, Any]:
    """Lightning's optimiser/scheduler dict; ``total_steps()`` is called only for the cosine schedule.

    The plateau schedule is not in it: the task steps it (:func:`make_plateau`).
    """
    optimizer = make_optimizer(params, cfg)
    schedule = cfg.get("scheduler", "constant")
    if schedule == "plateau":
        return {"optimizer": optimizer}
    total = total_steps() if schedule == "cosine" else 1

    def factor(step: int) -> float:
        return lr_factor(step, cfg, total)

    factor(int(cfg.get("warmup_steps", 0)))  # validate the option before training starts
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

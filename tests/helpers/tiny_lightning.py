"""Helpers for tests that run the real TranslationTask through a real Lightning Trainer on CPU.

Kept in their own module (not a test file) so processes spawned by ``ddp_spawn`` can import them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from s2s.data.dataset import Batch, collate
from s2s.training.task import TranslationTask

from conftest import small_model_config

VOCAB = 20
OPTIM = {"name": "adam", "lr": 1e-3, "scheduler": "constant", "warmup_steps": 0}


def make_task(optim: dict[str, Any] | None = None, label_smoothing: float = 0.1) -> TranslationTask:
    torch.manual_seed(0)
    return TranslationTask(small_model_config("bilstm_attn"), optim or OPTIM, VOCAB, label_smoothing=label_smoothing)


def items(first: int, count: int, src_len: int, seed: int) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Pairs of varying lengths (so batches hold different numbers of target tokens)."""
    g = torch.Generator().manual_seed(seed)
    return [
        (
            first + i,
            torch.randint(4, VOCAB, (src_len + i % 3,), generator=g),
            torch.randint(4, VOCAB, (src_len + 1 + i % 4,), generator=g),
        )
        for i in range(count)
    ]


def two_halves() -> tuple[list, list]:
    """Two halves of very different sizes: a token mean per half differs from the union's."""
    return items(0, 3, 3, seed=1), items(3, 6, 9, seed=2)


class PerRankBatches(pl.LightningDataModule):
    """``batches[rank]`` is the list of training batches of that rank (no validation)."""

    def __init__(self, batches: list[list[Batch]]):
        super().__init__()
        self.batches = batches

    def train_dataloader(self) -> DataLoader:
        # batch_size=None: each element is already a batch, passed through unchanged
        # as the real loaders: a private generator, so iter() leaves the global ones alone
        return DataLoader(
            self.batches[self.trainer.global_rank], batch_size=None, generator=torch.Generator().manual_seed(0)
        )


def trainer(**kwargs: Any) -> pl.Trainer:
    defaults: dict[str, Any] = dict(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        use_distributed_sampler=False,
        max_epochs=1,
    )
    return pl.Trainer(**{**defaults, **kwargs})


class SaveGradients(pl.Callback):
    """After training, each rank writes the gradients of the last optimizer step to ``out/grads{rank}.pt``.

    Lightning zeroes gradients at the start of a step, not after it, so they are still there.
    """

    def __init__(self, out: Path):
        self.out = out

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        grads = {n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None}
        torch.save(grads, self.out / f"grads{trainer.global_rank}.pt")


def gradients_of(batches: list[list[list]], out: Path, **trainer_kwargs: Any) -> dict[str, torch.Tensor]:
    """Gradients (rank 0's) of one optimizer step of the real task over ``batches`` (per rank, of items)."""
    out.mkdir(parents=True, exist_ok=True)
    task = make_task()
    data = PerRankBatches([[collate(b) for b in rank] for rank in batches])
    trainer(callbacks=[SaveGradients(out)], max_steps=1, gradient_clip_val=None, **trainer_kwargs).fit(
        task, datamodule=data
    )
    return torch.load(out / "grads0.pt", weights_only=True)


def rng_snapshot() -> dict[str, torch.Tensor]:
    """The process's CPU torch, Python and numpy generator states as tensors (easy to compare)."""
    return {
        "torch": torch.get_rng_state(),
        "python": torch.tensor(random.getstate()[1]),
        "numpy": torch.tensor([*np.random.get_state()[1].tolist(), np.random.get_state()[2]]),
    }


class RngProbe(pl.Callback):
    """Records each rank's random states around an exact resume.

    With ``save_at`` (the first run): each rank gets its own streams at the start, a checkpoint is
    written after ``save_at`` steps and the states right after it go to ``out/saved{rank}.pt``.
    Without (the resumed run): the states when the first batch starts, after the task restored
    them, go to ``out/restored{rank}.pt``.
    """

    def __init__(self, out: Path, ckpt: Path, save_at: int | None = None):
        self.out, self.ckpt, self.save_at = out, ckpt, save_at
        self.recorded = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.save_at is not None:
            rank = trainer.global_rank
            torch.manual_seed(100 + rank)
            random.seed(200 + rank)
            np.random.seed(300 + rank)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, idx: int) -> None:
        if self.save_at is None and not self.recorded:
            self.recorded = True
            torch.save(rng_snapshot(), self.out / f"restored{trainer.global_rank}.pt")

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        if self.save_at is not None and trainer.global_step == self.save_at:
            trainer.save_checkpoint(self.ckpt)  # on every rank, as Lightning requires
            torch.save(rng_snapshot(), self.out / f"saved{trainer.global_rank}.pt")

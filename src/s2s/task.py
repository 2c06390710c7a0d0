"""The LightningModule: loss, optimiser and schedule, validation loss and BLEU (DDP-exact)."""

from __future__ import annotations

import math
import random
import time
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F

from s2s.build import build_model
from s2s.data.dataset import Batch
from s2s.data.vocab import PAD_ID
from s2s.metrics import score_corpus
from s2s.search import greedy_search


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class TranslationTask(pl.LightningModule):
    """Trains a :class:`~s2s.models.seq2seq.Seq2Seq` built from the ``model`` config.

    Hyperparameters are plain dicts so checkpoints load with ``weights_only=True``.
    """

    def __init__(
        self,
        model: dict[str, Any],
        optim: dict[str, Any],
        vocab_size: int,
        label_smoothing: float = 0.0,
        val_max_len_a: float = 1.5,
        val_max_len_b: int = 10,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.model = build_model(model, vocab_size)
        self.optim_cfg = optim
        self._val_hyps: list[tuple[int, list[int]]] = []
        self._val_loss = torch.zeros(2, dtype=torch.float64)
        self._step_start = 0.0

    # ---- training -------------------------------------------------------------------------
    def _loss_sum(self, batch: Batch, smoothing: float) -> torch.Tensor:
        logits = self.model(batch.src, batch.src_lengths, batch.tgt_in)
        return F.cross_entropy(
            logits.reshape(-1, logits.size(-1)).float(),
            batch.tgt_out.reshape(-1),
            ignore_index=PAD_ID,
            label_smoothing=smoothing,
            reduction="sum",
        )

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        self._step_start = time.perf_counter()
        loader = self.trainer.train_dataloader
        if hasattr(loader, "consumed"):
            # a checkpoint written at the end of this batch (callbacks run before this module's
            # on_train_batch_end) must count it as consumed; batch_idx survives a resume
            loader.consumed = batch_idx + 1

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss_sum = self._loss_sum(batch, self.hparams.label_smoothing)
        ntokens = torch.tensor(float(batch.num_target_tokens), device=loss_sum.device)
        loss, total = distributed_token_mean(loss_sum, ntokens)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss.item()}) at global step {self.global_step}, epoch "
                f"{self.current_epoch}, batch {batch_idx} (dataset indices {batch.index[:8].tolist()}...); "
                "training stopped, no checkpoint was written for this step"
            )
        self.log(
            "train_loss",
            loss_sum / ntokens,
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=int(ntokens),
        )
        self._global_tokens = float(total)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Batch, batch_idx: int) -> None:
        elapsed = time.perf_counter() - self._step_start
        if elapsed > 0:
            self.log("tokens_per_sec", self._global_tokens / elapsed, on_step=True, on_epoch=False, prog_bar=True)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"], on_step=True, on_epoch=False)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # linear warmup for the plateau schedule (the other schedules build it into their lambda)
        warmup = int(self.optim_cfg.get("warmup_steps", 0))
        if self.optim_cfg.get("scheduler") == "plateau" and self.global_step < warmup:
            for group in optimizer.param_groups:
                group["lr"] = self.optim_cfg["lr"] * (self.global_step + 1) / warmup

    # ---- exact resume ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # dropout draws from the global RNGs: saving them makes a resumed run continue with the
        # same random numbers as one that never stopped (tensors and ints: weights_only-safe)
        checkpoint["rng_states"] = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._rng_to_restore = checkpoint.get("rng_states")

    def on_train_start(self) -> None:
        states = getattr(self, "_rng_to_restore", None)
        if states:
            torch.set_rng_state(states["torch"])
            random.setstate((3, tuple(states["python"]), None))
            self._rng_to_restore = None

    # ---- validation -----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_hyps = []
        self._val_loss = torch.zeros(2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss_sum = self._loss_sum(batch, 0.0)
        self._val_loss += torch.stack(
            [loss_sum.double(), torch.tensor(batch.num_target_tokens, device=self.device).double()]
        )
        hyps = greedy_search(
            self.model, batch.src, batch.src_lengths, self.hparams.val_max_len_a, self.hparams.val_max_len_b
        )
        self._val_hyps.extend(zip(batch.index.tolist(), [h.tokens for h in hyps], strict=True))

    def on_validation_epoch_end(self) -> None:
        totals = self.trainer.strategy.reduce(self._val_loss, reduce_op="sum")
        val_loss = float(totals[0] / totals[1].clamp(min=1))
        if self.trainer.sanity_checking:  # a few batches only: nothing to score
            self._log_validation(val_loss, 0.0)
            return
        hyps = gather_in_order(self._val_hyps, self.trainer.world_size)
        bleu = 0.0
        if self.trainer.is_global_zero:
            bleu = self._score(hyps)
            self.last_validation = {"val_loss": val_loss, "val_bleu": bleu, "hypotheses": hyps}
        bleu = self.trainer.strategy.broadcast(bleu, src=0)
        self._log_validation(val_loss, bleu)

    def _log_validation(self, val_loss: float, bleu: float) -> None:
        # identical on every rank (reduced / broadcast above), so no further sync
        self.log("val_loss", val_loss, sync_dist=False)
        self.log("val_ppl", math.exp(min(val_loss, 50.0)), sync_dist=False)
        self.log("val_bleu", bleu, prog_bar=True, sync_dist=False)

    def _score(self, hyps: list[list[int]]) -> float:
        datamodule = self.trainer.datamodule
        texts = datamodule.vocab.decode(hyps)
        records = datamodule.valid_records
        by_direction: dict[str, tuple[list[str], list[str]]] = {}
        for text, rec in zip(texts, records, strict=True):
            h, r = by_direction.setdefault(rec.direction, ([], []))
            h.append(text)
            r.append(rec.reference)
        scores = {d: score_corpus(h, r)["bleu"] for d, (h, r) in by_direction.items()}
        for direction, value in scores.items():
            if len(scores) > 1:
                self.log(f"val_bleu_{direction.replace('-', '_')}", value, rank_zero_only=True)
        return sum(scores.values()) / len(scores)

    # ---- optimisation ---------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        cfg = self.optim_cfg
        kinds = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
        if cfg["name"] not in kinds:
            raise ValueError(f"optim.name={cfg['name']!r}: expected one of {sorted(kinds)}")
        optimizer = kinds[cfg["name"]](
            self.parameters(),
            lr=cfg["lr"],
            betas=tuple(cfg.get("betas", (0.9, 0.999))),
            weight_decay=cfg.get("weight_decay", 0.0),
        )
        schedule, warmup = cfg.get("scheduler", "constant"), int(cfg.get("warmup_steps", 0))
        if schedule == "plateau":
            plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="max",
                factor=cfg.get("factor", 0.5),
                patience=cfg.get("patience", 1),
                min_lr=cfg.get("min_lr", 1e-5),
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": plateau, "monitor": "val_bleu", "interval": "epoch"},
            }
        total = max(1, int(self.trainer.estimated_stepping_batches)) if self._trainer is not None else 1

        def factor(step: int) -> float:
            if warmup and step < warmup:
                return (step + 1) / warmup
            if schedule == "constant":
                return 1.0
            if schedule == "inverse_sqrt":
                return math.sqrt(max(warmup, 1) / (step + 1))
            if schedule == "cosine":
                progress = min(1.0, (step - warmup) / max(1, total - warmup))
                floor = cfg.get("min_lr", 0.0) / cfg["lr"]
                return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
            raise ValueError(f"optim.scheduler={schedule!r}: expected constant, plateau, inverse_sqrt or cosine")

        factor(warmup)  # validate the option before training starts
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def distributed_token_mean(loss_sum: torch.Tensor, ntokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss to backpropagate, and the number of target tokens over all ranks.

    Normalised by the tokens of all ranks (times the world size, which DDP's gradient averaging
    divides out), so 2 processes x batch b give exactly the gradient of 1 process with the union
    batch 2b, even when the ranks' batches hold different numbers of tokens.
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        total = ntokens.detach().clone()
        dist.all_reduce(total)
        return loss_sum * dist.get_world_size() / total, total
    return loss_sum / ntokens, ntokens


def gather_in_order(items: list[tuple[int, list[int]]], world_size: int) -> list[list[int]]:
    """Hypotheses from every rank, ordered by dataset index (each index exactly once)."""
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        parts: list[Any] = [None] * world_size
        dist.all_gather_object(parts, items)
        items = [x for part in parts for x in part]
    items = sorted(items)
    indices = [i for i, _ in items]
    if indices != list(range(len(indices))):
        raise RuntimeError("validation hypotheses are missing or duplicated across ranks")
    return [h for _, h in items]

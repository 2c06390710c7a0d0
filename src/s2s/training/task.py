"""The LightningModule: loss, token-exact steps, validation loss and BLEU (DDP-exact).

The optimiser and learning-rate schedule live in :mod:`s2s.training.optim`, the per-rank random state
that exact resume restores in :mod:`s2s.training.rng`; this module wires them to Lightning's hooks.
"""

from __future__ import annotations

import math
import time
from typing import Any

import pytorch_lightning as pl
import torch
import torch.distributed as dist
import torch.nn.functional as F
from pytorch_lightning.callbacks import Timer

from s2s.common.io import InputError
from s2s.data.dataset import Batch
from s2s.evaluation.metrics import score_corpus
from s2s.inference.search import greedy_search
from s2s.models.build import build_model
from s2s.tokens import BOS_ID, PAD_ID
from s2s.training.optim import configure_optimizers, make_plateau, plateau_warmup_lr
from s2s.training.rng import gather_rng_states, restore_rank_states

#: the checkpoint key of the plateau schedule's state (the task steps it, not Lightning)
PLATEAU_KEY = "s2s_plateau_schedule"

#: ids that are never a target token: label smoothing gives them no probability
NEVER_TARGETS = (PAD_ID, BOS_ID)


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
        # kept in checkpoints, not logged: the train stage logs the whole config once (s2s.training.run)
        self.save_hyperparameters(logger=False)
        self.model = build_model(model, vocab_size)
        self.optim_cfg = optim
        self._val_hyps: list[tuple[int, list[int]]] = []
        self._val_loss = torch.zeros(2, dtype=torch.float64)
        self._window_tokens = 0  # target tokens of this rank since the last optimizer step
        self._window_start: float | None = None
        self._rng_to_restore: dict[str, Any] | None = None
        self._plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
        self._plateau_to_restore: dict[str, Any] | None = None

    # ---- training -------------------------------------------------------------------------
    def loss_sum(self, batch: Batch, smoothing: float) -> torch.Tensor:
        """Summed (label-smoothed) cross-entropy of the batch's target tokens."""
        logits = self.model(batch.src, batch.src_lengths, batch.tgt_in)
        return token_loss_sum(logits, batch.tgt_out, smoothing)

    def on_train_batch_start(self, batch: Batch, batch_idx: int) -> None:
        if self._window_start is None:
            self._window_start = time.perf_counter()
        loader = self.trainer.train_dataloader
        if hasattr(loader, "consumed"):
            # a checkpoint written at the end of this batch (callbacks run before this module's
            # on_train_batch_end) must count it as consumed; batch_idx survives a resume
            loader.consumed = batch_idx + 1

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        """The loss whose gradient, once rescaled in :meth:`on_before_optimizer_step`, is token-exact.

        Lightning divides the returned loss by ``accumulate_grad_batches`` and DDP averages the
        gradients over the ranks.  Both would weight each batch's *mean* loss equally, whatever
        its number of target tokens.  So this returns the *summed* loss times the accumulation
        factor, and the gradient is divided by the target tokens of the whole optimizer step (all
        accumulated batches, all ranks) just before the step: the update is exactly that of one
        batch holding all those tokens, as fairseq normalises.  The window's tokens are known
        only when it ends, so the division is on the gradient, not on the loss.
        """
        loss_sum = self.loss_sum(batch, self.hparams.label_smoothing)
        ntokens = batch.num_target_tokens
        if not torch.isfinite(loss_sum):
            raise NonFiniteLossError(
                f"non-finite training loss ({loss_sum.item()}) at global step {self.global_step}, epoch "
                f"{self.current_epoch}, batch {batch_idx} (dataset indices {batch.index[:8].tolist()}...); "
                "training stopped, no checkpoint was written for this step"
            )
        self._window_tokens += ntokens
        self.log(
            "train_loss",
            loss_sum.detach() / max(ntokens, 1),
            on_step=True,
            on_epoch=True,
            prog_bar=True,
            batch_size=ntokens,
            sync_dist=True,  # under DDP: the mean over ranks (per epoch weighted by target tokens)
        )
        return loss_sum * self.trainer.accumulate_grad_batches

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        # token-exact normalisation (see training_step); runs before Lightning clips the gradients
        tokens = torch.tensor(float(self._window_tokens), dtype=torch.float64, device=self.device)
        total = float(self.trainer.strategy.reduce(tokens, reduce_op="sum"))
        scale = self.trainer.world_size / max(total, 1.0)  # DDP averaged over world_size ranks
        for param in self.parameters():
            if param.grad is not None:
                param.grad.mul_(scale)
        elapsed = time.perf_counter() - (self._window_start or time.perf_counter())
        if elapsed > 0:
            self.log("tokens_per_sec", total / elapsed, on_step=True, on_epoch=False, prog_bar=True)
        self._window_tokens, self._window_start = 0, None
        # linear warmup for the plateau schedule (the other schedules build it into their lambda)
        warm_lr = plateau_warmup_lr(self.global_step, self.optim_cfg)
        if warm_lr is not None:
            for group in optimizer.param_groups:
                group["lr"] = warm_lr
        self.log("lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=False)

    # ---- exact resume ------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store every rank's random generators, so each rank resumes with its own.

        Dropout draws from the global generators (CPU, and the rank's CUDA device), which differ
        between ranks as soon as their batches differ.  Lightning calls this hook on every rank
        but only rank 0 writes the file, so the states are gathered here, indexed by global rank.
        """
        checkpoint["rng_states"] = gather_rng_states(self.device, self.trainer.world_size)
        if self._plateau is not None:
            checkpoint[PLATEAU_KEY] = self._plateau.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._rng_to_restore = checkpoint.get("rng_states")
        # Lightning restores the checkpoint before it calls configure_optimizers; a checkpoint of
        # the code before the task stepped the schedule holds it among Lightning's schedulers
        lightning_plateau = [s for s in checkpoint.get("lr_schedulers", []) if "num_bad_epochs" in s]
        self._plateau_to_restore = checkpoint.get(PLATEAU_KEY) or next(iter(lightning_plateau), None)

    def on_train_start(self) -> None:
        saved, self._rng_to_restore = self._rng_to_restore, None
        if not saved:
            return
        restore_rank_states(saved, self.trainer.global_rank, self.device)

    # ---- validation -----------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_hyps = []
        self._val_loss = torch.zeros(2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss_sum = self.loss_sum(batch, 0.0)
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
        # trainer.limit_val_batches < 1: the first batches only; BLEU is over the sentences decoded
        limit = self.trainer.limit_val_batches
        complete = isinstance(limit, float) and limit >= 1.0
        indices, hyps = gather_in_order(self._val_hyps, self.trainer.world_size, complete=complete)
        bleu = 0.0
        if self.trainer.is_global_zero:
            bleu = self._score(indices, hyps)
            self.last_validation = {"val_loss": val_loss, "val_bleu": bleu, "hypotheses": hyps, "indices": indices}
        bleu = self.trainer.strategy.broadcast(bleu, src=0)
        self._log_validation(val_loss, bleu)
        if self._plateau is not None and self.trainer.is_last_batch:
            # once an epoch, at its end (as Lightning's ``interval: epoch``), before the checkpoints
            # of this validation are written: a run resumed from them has the stepped schedule
            self._plateau.step(bleu)

    def _log_validation(self, val_loss: float, bleu: float) -> None:
        # already identical on every rank (reduced / broadcast above): the max over ranks leaves each
        # value exactly as it is, and tells Lightning the metric is synchronised (no warning)
        self.log("val_loss", val_loss, sync_dist=True, reduce_fx="max")
        self.log("val_ppl", math.exp(min(val_loss, 50.0)), sync_dist=True, reduce_fx="max")
        self.log("val_bleu", bleu, prog_bar=True, sync_dist=True, reduce_fx="max")

    def _score(self, indices: list[int], hyps: list[list[int]]) -> float:
        datamodule = self.trainer.datamodule
        texts = datamodule.vocab.decode(hyps)
        records = [datamodule.valid_records[i] for i in indices]
        by_direction: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
        for text, rec in zip(texts, records, strict=True):
            h, r = by_direction.setdefault((rec.src_lang, rec.tgt_lang), ([], []))
            h.append(text)
            r.append(rec.reference)
        scores = {d: score_corpus(h, r)["bleu"] for d, (h, r) in by_direction.items()}
        for (src_lang, tgt_lang), value in scores.items():
            if len(scores) > 1:
                self.log(f"val_bleu_{src_lang}_{tgt_lang}", value, rank_zero_only=True)
        return sum(scores.values()) / len(scores)

    # ---- optimisation ---------------------------------------------------------------------
    def _schedule_length(self) -> int:
        """Optimizer steps the cosine decay spans: the run's, so it ends at ``min_lr`` when training does.

        ``trainer.max_steps`` (or ``max_epochs`` times the fixed batches per epoch, whichever ends
        first) sets it.  A time budget (``trainer.max_time``) has no known number of steps: sizing
        from ``max_epochs`` then leaves the rate far from its floor when time runs out, so that
        combination is refused unless ``max_steps`` says where the schedule ends.
        """
        if self._trainer is None:
            return 1
        trainer = self.trainer
        if trainer.max_steps == -1 and _has_time_budget(trainer):
            raise InputError(
                "optim.scheduler=cosine cannot size its decay from trainer.max_time (a time budget has no "
                "known number of steps): set trainer.max_steps to the steps that fit the budget"
            )
        total = trainer.estimated_stepping_batches
        if not math.isfinite(total):
            raise InputError("optim.scheduler=cosine needs a finite run: set trainer.max_steps or trainer.max_epochs")
        return max(1, int(total))

    def configure_optimizers(self) -> Any:
        config = configure_optimizers(self.parameters(), self.optim_cfg, self._schedule_length)
        if self.optim_cfg.get("scheduler") == "plateau":
            self._plateau = make_plateau(config["optimizer"], self.optim_cfg)
            saved, self._plateau_to_restore = self._plateau_to_restore, None
            if saved is not None:
                self._plateau.load_state_dict(saved)
        return config


def gather_in_order(
    items: list[tuple[int, list[int]]], world_size: int, complete: bool = True
) -> tuple[list[int], list[list[int]]]:
    """Dataset indices and hypotheses from every rank, ordered by index: each index at most once,
    and with ``complete`` every index from 0 on (``trainer.limit_val_batches`` decodes a part)."""
    if world_size > 1 and dist.is_available() and dist.is_initialized():
        parts: list[Any] = [None] * world_size
        dist.all_gather_object(parts, items)
        items = [x for part in parts for x in part]
    items = sorted(items)
    indices = [i for i, _ in items]
    duplicated = len(set(indices)) != len(indices)
    if duplicated or (complete and indices != list(range(len(indices)))):
        raise RuntimeError("validation hypotheses are missing or duplicated across ranks")
    return indices, [h for _, h in items]


def _has_time_budget(trainer: pl.Trainer) -> bool:
    return any(isinstance(cb, Timer) for cb in trainer.callbacks)


def token_loss_sum(logits: torch.Tensor, target: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy summed over the non-PAD targets, smoothed over the real target classes only.

    With smoothing ``e`` the target distribution is ``1 - e`` on the reference plus ``e / K`` on
    each of the ``K = V - 2`` classes that can be a target.  PAD and BOS never are (PyTorch's
    ``label_smoothing`` would still give them ``e / V``, teaching the model to predict them);
    like Joey NMT they get zero.  Computed in float32 whatever the autocast precision.
    """
    vocab = logits.size(-1)
    logp = F.log_softmax(logits.reshape(-1, vocab).float(), dim=-1)
    target = target.reshape(-1)
    loss = -logp.gather(1, target.unsqueeze(1)).squeeze(1)
    if smoothing:
        real = logp.sum(-1) - sum(logp[:, i] for i in NEVER_TARGETS)
        loss = (1.0 - smoothing) * loss - smoothing * real / (vocab - len(NEVER_TARGETS))
    return loss.masked_fill(target == PAD_ID, 0.0).sum()

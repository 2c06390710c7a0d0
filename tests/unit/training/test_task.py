"""The LightningModule's loss, gradient normalisation, schedule and exact-resume RNG, through a real Trainer."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from s2s.common.io import InputError
from s2s.data.dataset import collate
from s2s.data.encoded import EvalRecord
from s2s.evaluation.metrics import score_corpus
from s2s.tokens import BOS_ID, PAD_ID
from s2s.training.task import token_loss_sum

from helpers.tiny_lightning import PerRankBatches, RngProbe, gradients_of, items, make_task, trainer, two_halves


# ---- label smoothing -----------------------------------------------------------------------------
def test_label_smoothing_gives_pad_and_bos_nothing() -> None:
    # 2 positions, vocabulary of 6 (0 PAD, 1 UNK, 2 BOS, 3 EOS, 4, 5); the second row is padding
    logits = torch.tensor([[[0.5, 1.0, 2.0, -1.0, 0.0, 3.0], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]]])
    target = torch.tensor([[5, PAD_ID]])
    eps = 0.3
    row = logits[0, 0].tolist()
    log_z = math.log(sum(math.exp(x) for x in row))
    logp = [x - log_z for x in row]
    # the smoothed target: eps / 4 on each real class (UNK, EOS, 4, 5), plus 1 - eps on the reference
    q = [0.0, eps / 4, 0.0, eps / 4, eps / 4, eps / 4]
    q[5] += 1 - eps
    assert sum(q) == pytest.approx(1.0) and q[PAD_ID] == q[BOS_ID] == 0.0
    expected = -sum(qk * lk for qk, lk in zip(q, logp, strict=True))
    assert token_loss_sum(logits, target, eps).item() == pytest.approx(expected, rel=1e-6)
    assert token_loss_sum(logits, target, 0.0).item() == pytest.approx(-logp[5], rel=1e-6)


def test_the_task_trains_and_validates_with_this_loss() -> None:
    task = make_task(label_smoothing=0.2)
    batch = collate(items(0, 4, 5, seed=3))
    logits = task.model(batch.src, batch.src_lengths, batch.tgt_in)
    assert torch.equal(task.loss_sum(batch, 0.2), token_loss_sum(logits, batch.tgt_out, 0.2))


# ---- token-exact gradients -----------------------------------------------------------------------
def test_accumulated_batches_give_the_union_batch_gradient(tmp_path: Path) -> None:
    first, second = two_halves()
    union = gradients_of([[first + second]], tmp_path / "union")
    accumulated = gradients_of([[first, second]], tmp_path / "acc", accumulate_grad_batches=2)
    assert union.keys() == accumulated.keys() and len(union) > 0
    for name, grad in union.items():
        torch.testing.assert_close(accumulated[name], grad, rtol=1e-5, atol=1e-7, msg=name)


# ---- cosine schedule length ---------------------------------------------------------------------
COSINE = {"name": "adamw", "lr": 0.01, "scheduler": "cosine", "warmup_steps": 2, "min_lr": 1e-4}


def _fit(**trainer_kwargs) -> pl.LightningModule:
    task = make_task(optim=COSINE)
    data = PerRankBatches([[collate(items(4 * i, 4, 3 + i, seed=i)) for i in range(5)]])
    trainer(**trainer_kwargs).fit(task, datamodule=data)
    return task


@pytest.mark.parametrize("budget", [{"max_steps": 7, "max_epochs": -1}, {"max_epochs": 2}])
def test_cosine_ends_at_min_lr_when_training_ends(budget: dict) -> None:
    task = _fit(**budget)
    assert task.trainer.global_step == budget.get("max_steps", 10)
    assert task.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(COSINE["min_lr"])


def test_cosine_under_a_time_budget_needs_max_steps() -> None:
    with pytest.raises(InputError, match="trainer.max_steps"):
        _fit(max_time="00:00:30:00", max_epochs=20)
    # with max_steps the schedule knows where it ends
    task = _fit(max_time="00:00:30:00", max_epochs=20, max_steps=6)
    assert task.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(COSINE["min_lr"])


# ---- exact resume: every rank its own random streams -----------------------------------------------
def test_each_ddp_rank_restores_its_own_random_state(tmp_path: Path) -> None:
    ckpt = tmp_path / "mid.ckpt"
    batches = [[collate(items(10 * r + 3 * i, 3, 3 + i + r, seed=10 * r + i)) for i in range(4)] for r in range(2)]
    ddp = {"strategy": "ddp_spawn", "devices": 2}
    trainer(callbacks=[RngProbe(tmp_path, ckpt, save_at=2)], max_steps=3, **ddp).fit(
        make_task(), datamodule=PerRankBatches(batches)
    )
    trainer(callbacks=[RngProbe(tmp_path, ckpt)], max_steps=4, **ddp).fit(
        make_task(), datamodule=PerRankBatches(batches), ckpt_path=ckpt
    )
    saved = [torch.load(tmp_path / f"saved{r}.pt", weights_only=True) for r in range(2)]
    restored = [torch.load(tmp_path / f"restored{r}.pt", weights_only=True) for r in range(2)]
    for key in saved[0]:
        assert not torch.equal(saved[0][key], saved[1][key]), f"{key}: the ranks' streams must differ"
        for rank in range(2):
            assert torch.equal(restored[rank][key], saved[rank][key]), f"rank {rank} did not restore its {key} state"


# ---- validation on part of the validation set (trainer.limit_val_batches) ----------------------------
class _ValidationSet(pl.LightningDataModule):
    """Three validation batches, not in dataset order (the real loader buckets by length)."""

    def __init__(self) -> None:
        super().__init__()
        self.batches = [collate(items(first, 4, 3 + first % 3, seed=first)) for first in (4, 0, 8)]
        self.valid_records = [EvalRecord("en", "de", f"s{i}", f"w{i} x y z") for i in range(12)]
        self.vocab = self

    def decode(self, hyps: list[list[int]]) -> list[str]:
        return [" ".join(f"w{t}" for t in h) for h in hyps]

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.batches, batch_size=None)


@pytest.mark.parametrize("limit", [2, 0.7])  # 0.7 of 3 batches: Lightning takes 2
def test_limit_val_batches_validates_and_scores_the_first_batches(limit: float) -> None:
    """``trainer.limit_val_batches`` below the whole set crashed every validation ("hypotheses are
    missing"): now BLEU is scored over the sentences of the batches that were decoded."""
    task = make_task()
    data = _ValidationSet()
    trainer(limit_val_batches=limit).validate(task, datamodule=data)
    decoded = task.last_validation["indices"]
    assert decoded == list(range(0, 8))  # the first batches hold sentences 4-7, then 0-3
    assert len(task.last_validation["hypotheses"]) == 8
    refs = [data.valid_records[i].reference for i in decoded]
    expected = score_corpus(data.decode(task.last_validation["hypotheses"]), refs)["bleu"]
    assert task.last_validation["val_bleu"] == pytest.approx(expected)

"""The LightningDataModule: encoded splits, length-bucketed batches, resumable train loader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader

from s2s.data.dataset import ParallelData, collate
from s2s.data.encoded import read_eval_records
from s2s.data.loaders import eval_loader, private_generator, sequence_lengths
from s2s.data.sampler import TokenBatchSampler
from s2s.data.vocab import Vocabulary


class _EpochHook:
    """Lightning calls ``loader.batch_sampler.sampler.set_epoch`` each epoch; forward it."""

    def __init__(self, batch_sampler: TokenBatchSampler):
        self.batch_sampler = batch_sampler

    def set_epoch(self, epoch: int) -> None:
        self.batch_sampler.set_epoch(epoch)


class ResumableLoader(DataLoader):
    """A DataLoader whose position Lightning saves in checkpoints and restores on resume.

    The training task records how many batches of the epoch finished (``consumed``); on restore
    the sampler skips exactly those, so a run resumed mid-epoch sees the same batches as one that
    never stopped.
    """

    consumed: int = 0

    def state_dict(self) -> dict[str, int]:
        return {**self.batch_sampler.state_dict(), "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.consumed = int(state.get("consumed", 0))
        self.batch_sampler.load_state_dict(state, self.consumed)


class TranslationDataModule(pl.LightningDataModule):
    def __init__(
        self,
        data_dir: str,
        max_tokens: int | None = None,
        max_sentences: int | None = 64,
        eval_max_sentences: int = 128,
        seed: int = 1234,
        num_workers: int = 0,
    ):
        super().__init__()
        self.data_dir = Path(data_dir)
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.eval_max_sentences = eval_max_sentences
        self.seed, self.num_workers = seed, num_workers
        self.vocab = Vocabulary(self.data_dir / "spm.model")
        self.train_data: ParallelData | None = None
        self.valid_data: ParallelData | None = None
        self.valid_records: list[Any] = []

    def setup(self, stage: str | None = None) -> None:
        if self.train_data is None:
            self.train_data = ParallelData.load(self.data_dir / "train.npz")
            self.valid_data = ParallelData.load(self.data_dir / "valid.npz")
            self.valid_records = read_eval_records(self.data_dir / "valid.tsv")

    def _replicas(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.world_size, trainer.global_rank) if trainer is not None else (1, 0)

    def train_dataloader(self) -> ResumableLoader:
        world, rank = self._replicas()
        sampler = TokenBatchSampler(
            sequence_lengths(self.train_data),
            self.max_tokens,
            self.max_sentences,
            True,
            self.seed,
            world,
            rank,
        )
        sampler.sampler = _EpochHook(sampler)
        return ResumableLoader(
            self.train_data,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            generator=private_generator(self.seed),
        )

    def val_dataloader(self) -> DataLoader:
        return eval_loader(self.valid_data, self.eval_max_sentences, *self._replicas())

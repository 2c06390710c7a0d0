"""Plain PyTorch loaders shared by training, evaluate and translate.

No Lightning here: evaluate and translate import this module, and must start without paying for
Lightning's import.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from s2s.data.dataset import ParallelData, collate
from s2s.data.sampler import TokenBatchSampler


def sequence_lengths(data: ParallelData) -> np.ndarray:
    # +1 for EOS / BOS: the padded size of the longer side is what a batch costs
    return np.maximum(data.src_lengths(), data.tgt_lengths()) + 1


def eval_loader(data: ParallelData, max_sentences: int, world: int = 1, rank: int = 0) -> DataLoader:
    """Batches of similar lengths, each sentence exactly once across ranks."""
    sampler = TokenBatchSampler(sequence_lengths(data), None, max_sentences, False, 0, world, rank)
    return DataLoader(data, batch_sampler=sampler, collate_fn=collate, generator=private_generator(0))


def private_generator(seed: int) -> torch.Generator:
    """A DataLoader's own generator, for the workers' base seed it draws on every ``iter()``.

    Without one, each ``iter(loader)`` draws from the global torch generator that dropout uses.
    A run resumed mid-epoch makes one ``iter()`` that the uninterrupted run did not, so its
    dropout masks would differ from there on although the generators were restored exactly.
    """
    return torch.Generator().manual_seed(seed)

"""Length-bucketed batches by sentence or token count, DDP-aware and resumable.

Each epoch the indices are sorted by length with ties broken at random (seed + epoch), cut into
batches under ``max_tokens`` padded tokens and ``max_sentences`` sentences, and the batch order is
shuffled.  Under DDP every rank computes the same batch list and takes a disjoint stride of it; the
list is first cut to a multiple of the number of ranks so all ranks run the same number of steps
(no hang at the epoch end).

Why a global sort with random tie-breaks (as fairseq orders its data) rather than shuffling and
sorting inside chunks: the greedy packing depends only on the *sequence of lengths*, and a sorted
sequence of lengths is the same whatever the shuffle.  So every epoch has exactly the same number
of batches, known before the first one.  Lightning reads ``len(loader)`` once per run (the epoch
end, validation, ``estimated_stepping_batches`` and the resume position all rest on it); a count
that moved with the shuffle made some epochs end before their validation and others lose their
tail.  The shuffle still changes which sentences of equal length share a batch, and the order of
the batches, every epoch; padding is minimal.

Evaluation batches (``shuffle=False``) are never cut: every sentence is decoded exactly once
across ranks, and results are put back in order by their dataset index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class TokenBatchSampler(Sampler[list[int]]):
    def __init__(
        self,
        lengths: Sequence[int],
        max_tokens: int | None = None,
        max_sentences: int | None = 64,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ):
        if not max_tokens and not max_sentences:
            raise ValueError("data.batch: set max_tokens, max_sentences or both")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.max_tokens, self.max_sentences = max_tokens, max_sentences
        self.shuffle, self.seed = shuffle, seed
        self.num_replicas, self.rank = num_replicas, rank
        self.epoch = 0
        self.start_batch = 0  # batches of this epoch already consumed (set when resuming)
        self._batches_by_epoch: dict[int, list[list[int]]] = {}
        self._num_batches: int | None = None

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start_batch = 0
        self.epoch = epoch

    def _pack(self, order: np.ndarray, max_sentences: int | None) -> list[list[int]]:
        batches, current, longest = [], [], 0
        for idx in order.tolist():
            length = int(self.lengths[idx])
            new_longest = max(longest, length)
            over_tokens = self.max_tokens and new_longest * (len(current) + 1) > self.max_tokens
            over_sents = max_sentences and len(current) + 1 > max_sentences
            if current and (over_tokens or over_sents):
                batches.append(current)
                current, new_longest = [], length
            current.append(idx)
            longest = new_longest
        if current:
            batches.append(current)
        return batches

    def all_batches(self) -> list[list[int]]:
        """Every batch of the current epoch, before sharding across ranks."""
        if self.epoch in self._batches_by_epoch:
            return self._batches_by_epoch[self.epoch]
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            limit = self.max_sentences
            if self.num_replicas > 1 and n >= self.num_replicas:
                # small sets: smaller batches, so that every rank gets at least one
                limit = min(limit or n, -(-n // self.num_replicas))
            batches = self._pack(order, limit)
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            # sort by length, ties in random order: the length sequence, hence the packing's
            # batch sizes, is the same every epoch (see the module docstring)
            order = np.lexsort((rng.random(n), self.lengths))
            batches = self._pack(order, self.max_sentences)
            perm = rng.permutation(len(batches))
            batches = [batches[i] for i in perm][: self._usable_batches()]
        self._batches_by_epoch = {self.epoch: batches}
        return batches

    def _usable_batches(self) -> int:
        """Training batches per epoch over all ranks: fixed for the run, a multiple of the ranks."""
        if self._num_batches is None:
            total = len(self._pack(np.argsort(self.lengths, kind="stable"), self.max_sentences))
            self._num_batches = total - total % self.num_replicas
        return self._num_batches

    def _my_batches(self) -> list[list[int]]:
        return self.all_batches()[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._my_batches()
        start, self.start_batch = self.start_batch, 0
        yield from batches[start:]

    def __len__(self) -> int:
        if self.shuffle:
            return self._usable_batches() // self.num_replicas
        return len(self._my_batches())

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict[str, int], consumed: int) -> None:
        self.epoch, self.start_batch = int(state["epoch"]), int(consumed)

"""Decoding many sentences: batches formed by length, results back in input order.

Shared by evaluate (test sets) and translate (raw text); neither owns it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from s2s.data.dataset import ParallelData
from s2s.data.loaders import eval_loader
from s2s.inference.search import Hypothesis, SearchOptions, decode


def translate_ids(
    model: torch.nn.Module, src_ids: Sequence[Sequence[int]], opts: SearchOptions, batch_size: int = 64
) -> list[list[Hypothesis]]:
    """n-best hypotheses for every source, in input order (batches are formed by length)."""
    data = ParallelData.from_sequences(src_ids, [[] for _ in src_ids])
    out: list[list[Hypothesis] | None] = [None] * len(src_ids)
    model.eval()
    with torch.inference_mode():
        for batch in eval_loader(data, batch_size):
            for i, hyps in zip(batch.index.tolist(), decode(model, batch.src, batch.src_lengths, opts), strict=True):
                out[i] = hyps
    return out  # type: ignore[return-value]

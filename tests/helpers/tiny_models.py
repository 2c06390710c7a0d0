"""Tiny random models, synthetic data and a tagged vocabulary shared by the unit tests.

VOCAB ids 0-3 are the special tokens (PAD, UNK, BOS, EOS); every generated token id is 4 or above.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import nn

from s2s.data.vocab import Vocabulary, train_sentencepiece
from s2s.models.build import build_model
from s2s.tokens import EOS_ID

from conftest import small_model_config

VOCAB = 14


@functools.cache
def _config(name: str) -> tuple:
    return tuple(small_model_config(name, emb=16, enc=16, dec=16).items())


def make_model(name: str, vocab: int = VOCAB, seed: int = 0, eos_bias: float = 1.0, sharpen: float = 3.0) -> nn.Module:
    """A tiny random model in eval mode with peaked outputs; ``eos_bias`` makes EOS more or less likely.

    The output layer gets a bias (only EOS's is non-zero), so hypotheses end at varied lengths,
    which exercises finishing, early stopping and removing done sentences from the batch.
    """
    torch.manual_seed(seed)
    # every model drawn uniform(-0.6, 0.6), norms too (a Transformer trains from its own init): peaked, varied outputs
    model = build_model({**dict(_config(name)), "init": "uniform", "init_scale": 0.6}, vocab_size=vocab)
    old = model.decoder.output_layer
    layer = nn.Linear(old.in_features, old.out_features, bias=True)
    with torch.no_grad():
        layer.weight.copy_(old.weight * sharpen)
        layer.bias.zero_()
        layer.bias[EOS_ID] = eos_bias
    model.decoder.output_layer = layer
    return model.eval()


def make_batch(lengths: list[int], vocab: int = VOCAB, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded sources ending with EOS; ``lengths`` count the EOS."""
    g = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, : n - 1] = torch.randint(4, vocab, (n - 1,), generator=g)
        src[i, n - 1] = EOS_ID
    return src, torch.tensor(lengths)


def padded_batch(lengths: list[int], vocab: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded sources of random tokens (no EOS), with their lengths."""
    g = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,), generator=g)
    return src, torch.tensor(lengths)


def reverse_task(
    n: int, seed: int, min_len: int = 2, max_len: int = 5
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """``n`` items (index, source, the source reversed) of ``min_len`` to ``max_len`` tokens."""
    g = torch.Generator().manual_seed(seed)
    items = []
    for i in range(n):
        length = int(torch.randint(min_len, max_len + 1, (1,), generator=g))
        src = torch.randint(4, VOCAB, (length,), generator=g)
        items.append((i, src, src.flip(0)))
    return items


TAGGED_CORPUS = ["a dog runs in the park", "ein Hund rennt im Park", "two cats sleep", "zwei Katzen schlafen"]


def tagged_vocabulary(folder: Path) -> Vocabulary:
    """A SentencePiece model (in ``folder``) with <2de>/<2en> as single pieces, as preprocess.reverse=true makes."""
    tags = ["<2de>", "<2en>"]
    return Vocabulary(train_sentencepiece(TAGGED_CORPUS * 20, folder / "spm", vocab_size=30, user_defined_symbols=tags))

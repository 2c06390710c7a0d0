"""Encoded parallel data in memory, as training and decoding read it (the file format, which
preprocess writes without torch, is :mod:`s2s.data.encoded`)."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from s2s.common.io import InputError
from s2s.data.encoded import flatten, save_encoded
from s2s.tokens import BOS_ID, EOS_ID, PAD_ID


class ParallelData(Dataset):
    """Pairs of id sequences; item ``i`` is ``(i, src_ids, tgt_ids)`` as int64 tensors."""

    def __init__(self, src: np.ndarray, src_offsets: np.ndarray, tgt: np.ndarray, tgt_offsets: np.ndarray):
        self.src, self.src_offsets = torch.from_numpy(src.astype(np.int64)), src_offsets
        self.tgt, self.tgt_offsets = torch.from_numpy(tgt.astype(np.int64)), tgt_offsets

    @classmethod
    def from_sequences(cls, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> ParallelData:
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} source but {len(tgt)} target sequences")
        return cls(*flatten(src), *flatten(tgt))

    @classmethod
    def load(cls, path: str | Path) -> ParallelData:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: encoded split not found (run the preprocess stage first)")
        try:
            with np.load(path) as z:
                return cls(z["src"], z["src_offsets"], z["tgt"], z["tgt_offsets"])
        except (zipfile.BadZipFile, ValueError, KeyError, EOFError, OSError) as err:  # truncated, not npz
            raise InputError(
                f"{path}: not a readable encoded split ({type(err).__name__}: {err}); rerun the preprocess stage"
            ) from err

    def save(self, path: str | Path) -> None:
        save_encoded(path, self.src.numpy().astype(np.int32), self.src_offsets,
                     self.tgt.numpy().astype(np.int32), self.tgt_offsets)

    def __len__(self) -> int:
        return len(self.src_offsets) - 1

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, torch.Tensor]:
        return (
            i,
            self.src[self.src_offsets[i] : self.src_offsets[i + 1]],
            self.tgt[self.tgt_offsets[i] : self.tgt_offsets[i + 1]],
        )

    def src_lengths(self) -> np.ndarray:
        return np.diff(self.src_offsets)

    def tgt_lengths(self) -> np.ndarray:
        return np.diff(self.tgt_offsets)


@dataclass
class Batch:
    """A padded batch. Sources end with EOS; ``tgt_in`` starts with BOS, ``tgt_out`` ends with EOS."""

    index: torch.Tensor
    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor

    @property
    def num_target_tokens(self) -> int:
        return int((self.tgt_out != PAD_ID).sum())

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            *(t.to(device) for t in (self.index, self.src, self.src_lengths, self.tgt_in, self.tgt_out))
        )


def collate(items: Sequence[tuple[int, torch.Tensor, torch.Tensor]]) -> Batch:
    n = len(items)
    src_len = torch.tensor([len(s) + 1 for _, s, _ in items])
    tgt_len = max(len(t) for _, _, t in items) + 1
    src = torch.full((n, int(src_len.max())), PAD_ID, dtype=torch.long)
    tgt_in = torch.full((n, tgt_len), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((n, tgt_len), PAD_ID, dtype=torch.long)
    for row, (_, s, t) in enumerate(items):
        src[row, : len(s)] = s
        src[row, len(s)] = EOS_ID
        tgt_in[row, 0] = BOS_ID
        tgt_in[row, 1 : len(t) + 1] = t
        tgt_out[row, : len(t)] = t
        tgt_out[row, len(t)] = EOS_ID
    index = torch.tensor([i for i, _, _ in items], dtype=torch.long)
    return Batch(index, src, src_len, tgt_in, tgt_out)

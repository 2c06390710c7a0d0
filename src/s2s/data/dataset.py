"""Encoded parallel data on disk and in memory.

A split is stored as ``<split>.npz``: the source and target ids of all pairs concatenated into two
flat int32 arrays, with offsets.  This is compact, loads in milliseconds and needs no tokenizer at
training time.  Evaluation splits also get ``<split>.tsv`` (source and target language, raw source, raw reference).
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from s2s.common.io import InputError, atomic_path
from s2s.data.testsets import row_languages
from s2s.tokens import BOS_ID, EOS_ID, PAD_ID


def _flatten(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


class ParallelData(Dataset):
    """Pairs of id sequences; item ``i`` is ``(i, src_ids, tgt_ids)`` as int64 tensors."""

    def __init__(self, src: np.ndarray, src_offsets: np.ndarray, tgt: np.ndarray, tgt_offsets: np.ndarray):
        self.src, self.src_offsets = torch.from_numpy(src.astype(np.int64)), src_offsets
        self.tgt, self.tgt_offsets = torch.from_numpy(tgt.astype(np.int64)), tgt_offsets

    @classmethod
    def from_sequences(cls, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> ParallelData:
        if len(src) != len(tgt):
            raise ValueError(f"{len(src)} source but {len(tgt)} target sequences")
        return cls(*_flatten(src), *_flatten(tgt))

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
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh,
                    src=self.src.numpy().astype(np.int32),
                    src_offsets=self.src_offsets,
                    tgt=self.tgt.numpy().astype(np.int32),
                    tgt_offsets=self.tgt_offsets,
                )

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


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation line: its languages (fields: a code may hold a hyphen), the raw source and
    the raw reference."""

    src_lang: str
    tgt_lang: str
    source: str
    reference: str

    @property
    def direction(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"


def write_eval_records(path: str | Path, records: Sequence[EvalRecord]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            writer.writerow(["src_lang", "tgt_lang", "source", "reference"])
            for r in records:
                writer.writerow([r.src_lang, r.tgt_lang, r.source, r.reference])


def read_eval_records(path: str | Path) -> list[EvalRecord]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: evaluation records not found (run the preprocess stage first)")
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, [])
        if header[:2] == ["src_lang", "tgt_lang"]:
            return [EvalRecord(*row) for row in reader]
        # written before the languages were fields: direction, source, reference
        return [
            EvalRecord(*row_languages({"direction": d}, f"{path}, line {n}"), s, r)
            for n, (d, s, r) in enumerate(reader, 2)
        ]

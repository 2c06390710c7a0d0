"""Encoded splits on disk, written by preprocess and read by training and evaluation (numpy only:
preprocess does not import torch).

A split is stored as ``<split>.npz``: the source and target ids of all pairs concatenated into two
flat int32 arrays, with offsets.  This is compact, loads in milliseconds and needs no tokenizer at
training time.  Evaluation splits also get ``<split>.tsv`` (source and target language, raw source, raw reference).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from s2s.common.io import InputError, atomic_path
from s2s.data.testsets import row_languages


def flatten(seqs: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(s) for s in seqs])
    flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def save_encoded(
    path: str | Path, src: np.ndarray, src_offsets: np.ndarray, tgt: np.ndarray, tgt_offsets: np.ndarray
) -> None:
    """One split's flat int32 ids and offsets as ``.npz``, written whole or not at all."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, src=src, src_offsets=src_offsets, tgt=tgt, tgt_offsets=tgt_offsets)


def save_sequences(path: str | Path, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> None:
    """Pairs of id sequences saved as one encoded split."""
    if len(src) != len(tgt):
        raise ValueError(f"{len(src)} source but {len(tgt)} target sequences")
    save_encoded(path, *flatten(src), *flatten(tgt))


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

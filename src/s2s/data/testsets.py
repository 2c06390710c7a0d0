"""Prepared test sets: one JSON line per sentence with all its references.

A test set may have several references (WMT22: A and B) and, for the literature-comparable score,
the official tokenized reference.  JSON lines keep that shape without a column convention and are
still one sentence per line to read.  Written by preprocess to ``data/prepared/testsets/<name>.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from s2s.io import InputError, atomic_path


@dataclass(frozen=True)
class TestRecord:
    """One test sentence: direction (``en-de``), raw source, raw references, official tokenized references."""

    __test__ = False  # not a pytest test class

    direction: str
    source: str
    refs: tuple[str, ...]
    tok_refs: tuple[str, ...] = ()


def write_test_records(path: str | Path, records: Sequence[TestRecord]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for r in records:
            row = {"direction": r.direction, "source": r.source, "refs": list(r.refs), "tok_refs": list(r.tok_refs)}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_test_records(path: str | Path) -> list[TestRecord]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: test set not found (run the preprocess stage first)")
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            out.append(TestRecord(row["direction"], row["source"], tuple(row["refs"]), tuple(row["tok_refs"])))
    return out

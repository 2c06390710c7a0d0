"""Prepared test sets: one JSON line per sentence with all its references.

A test set may have several references (WMT22: A and B) and, for the literature-comparable score,
the official tokenized reference.  JSON lines keep that shape without a column convention and are
still one sentence per line to read.  Written by preprocess to ``data/prepared/testsets/<name>.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from s2s.common.io import InputError, atomic_path


@dataclass(frozen=True)
class TestRecord:
    """One test sentence: its languages, raw source, raw references, official tokenized references.

    The languages are fields, never parsed back out of ``direction``: a code may hold a hyphen
    (``pt-BR``), so ``en-pt-BR`` cannot be split at "-"."""

    __test__ = False  # not a pytest test class

    src_lang: str
    tgt_lang: str
    source: str
    refs: tuple[str, ...]
    tok_refs: tuple[str, ...] = ()

    @property
    def direction(self) -> str:
        """``<src>-<tgt>`` (``en-de``): a label for reports, not to be split."""
        return f"{self.src_lang}-{self.tgt_lang}"


def row_languages(row: Mapping[str, Any], where: str) -> tuple[str, str]:
    """The languages of a stored record; a file written before they were fields has only
    ``direction``, which is split only where that is unambiguous (one hyphen)."""
    if "src_lang" in row:
        return row["src_lang"], row["tgt_lang"]
    parts = str(row.get("direction", "")).split("-")
    if len(parts) != 2:
        raise InputError(f"{where}: direction {row.get('direction')!r} without languages: rerun the preprocess stage")
    return parts[0], parts[1]


def write_test_records(path: str | Path, records: Sequence[TestRecord]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        for r in records:
            row = {
                "src_lang": r.src_lang,
                "tgt_lang": r.tgt_lang,
                "source": r.source,
                "refs": list(r.refs),
                "tok_refs": list(r.tok_refs),
            }
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_test_records(path: str | Path) -> list[TestRecord]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: test set not found (run the preprocess stage first)")
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            row = json.loads(line)
            langs = row_languages(row, f"{path}, line {n}")
            out.append(TestRecord(*langs, row["source"], tuple(row["refs"]), tuple(row["tok_refs"])))
    return out

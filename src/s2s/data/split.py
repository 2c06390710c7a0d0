"""A seeded train/valid/test split for a corpus that has none (Tatoeba, a user's TSV file).

Pairs are grouped by their source sentence, so a sentence with several translations (Tatoeba
repeats English sentences) lands in one split only: a test sentence seen in training would
inflate the score.  Groups are taken in a seeded random order (the corpus may be sorted by length)
until each held-out split has exactly the configured number of pairs.  Only an 8-byte hash per
line is kept, so the split of millions of pairs needs tens of megabytes.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable

import numpy as np

from s2s.io import InputError

TRAIN, VALID, TEST = 0, 1, 2
ROLE_NAMES = {TRAIN: "train", VALID: "valid", TEST: "test"}


def sentence_key(sentence: str) -> int:
    """A stable 64-bit key of a source sentence (surrounding whitespace ignored)."""
    return int.from_bytes(hashlib.blake2b(sentence.strip().encode("utf-8"), digest_size=8).digest(), "little")


def assign_split(sources: Iterable[str], valid: int, test: int, seed: int, option: str = "data.split") -> np.ndarray:
    """The role (TRAIN, VALID or TEST) of every line, as a uint8 array in input order.

    Deterministic for a seed; no source sentence has pairs in two roles; the held-out roles get
    exactly ``valid`` and ``test`` pairs whenever groups of repeated sentences allow it.
    """
    keys = array("Q", (sentence_key(s) for s in sources))
    hashes = np.frombuffer(keys, dtype=np.uint64) if len(keys) else np.zeros(0, dtype=np.uint64)
    uniq, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
    group_role = np.full(len(uniq), TRAIN, dtype=np.uint8)
    order = np.random.default_rng(seed).permutation(len(uniq))
    pos = 0
    for role, size in ((TEST, test), (VALID, valid)):
        taken = 0
        skipped = []
        while taken < size and pos < len(order):
            g = order[pos]
            pos += 1
            if taken + counts[g] <= size:
                group_role[g] = role
                taken += int(counts[g])
            else:
                skipped.append(g)  # too many translations to fit exactly: leave for the next role / train
        order = np.concatenate([np.asarray(skipped, dtype=order.dtype), order[pos:]])
        pos = 0
    roles = group_role[inverse]
    sizes = {name: int((roles == r).sum()) for r, name in ROLE_NAMES.items()}
    empty = [name for name, n in sizes.items() if n == 0]
    if empty:
        raise InputError(
            f"{option}: the {empty[0]} split ends up empty ({len(roles)} pairs, {len(uniq)} distinct source "
            f"sentences; asked valid={valid}, test={test}); lower {option}.valid/test or use a larger corpus"
        )
    return roles


def split_sizes(roles: np.ndarray) -> dict[str, int]:
    return {name: int((roles == r).sum()) for r, name in ROLE_NAMES.items()}

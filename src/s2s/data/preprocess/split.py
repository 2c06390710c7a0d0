"""A seeded train/valid/test split for a corpus that has none (Tatoeba, a user's TSV file).

A test sentence seen in training inflates the score, on either side: Tatoeba repeats English
sentences with several German translations, and repeats German sentences as the translation of
several English ones ("I fainted." and "I blacked out." are both "Ich wurde ohnmächtig.").  So
pairs are grouped into connected components (union-find): two pairs sharing their source *or*
their target sentence are in one component, and a component lands in one split only.  Components
are taken in a seeded random order (the corpus may be sorted by length) until each held-out split
has exactly the configured number of pairs.  Only an 8-byte hash per sentence is kept, so the
split of millions of pairs needs tens of megabytes.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from s2s.common.io import InputError

TRAIN, VALID, TEST = 0, 1, 2
ROLE_NAMES = {TRAIN: "train", VALID: "valid", TEST: "test"}


def sentence_key(sentence: str) -> int:
    """A stable 64-bit key of a sentence (surrounding whitespace ignored)."""
    return int.from_bytes(hashlib.blake2b(sentence.strip().encode("utf-8"), digest_size=8).digest(), "little")


@dataclass
class Split:
    """The role of every pair, and the counts ``reports/preprocess.json`` gives about the grouping."""

    roles: np.ndarray
    distinct_sources: int
    distinct_targets: int
    duplicate_pairs: int
    components: int
    largest_component: int

    def stats(self) -> dict[str, int]:
        return {
            "pairs": len(self.roles),
            "distinct_sources": self.distinct_sources,
            "distinct_targets": self.distinct_targets,
            "duplicate_pairs": self.duplicate_pairs,
            "components": self.components,
            "largest_component": self.largest_component,
        }


def _components(src: np.ndarray, tgt: np.ndarray, n_src: int, n_tgt: int) -> np.ndarray:
    """The component label (0..C-1, in order of first appearance) of every pair: a union-find over
    sentences, source sentence ``i`` being node ``i`` and target sentence ``j`` node ``n_src + j``,
    each pair an edge."""
    parent = list(range(n_src + n_tgt))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]  # path halving
            x = parent[x]
        return x

    for a, b in zip(src.tolist(), (tgt + n_src).tolist(), strict=True):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)  # deterministic: the smaller node is the root
    roots = np.fromiter((find(a) for a in src.tolist()), dtype=np.int64, count=len(src))
    _, first, labels = np.unique(roots, return_index=True, return_inverse=True)
    # relabel by first appearance, so labels do not depend on hash values' order
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[labels.reshape(-1)]


def _hashes(keys: array) -> np.ndarray:
    return np.frombuffer(keys, dtype=np.uint64) if len(keys) else np.zeros(0, dtype=np.uint64)


def assign_split(
    pairs: Iterable[tuple[str, str]], valid: int, test: int, seed: int, option: str = "data.split"
) -> Split:
    """The role (TRAIN, VALID or TEST) of every (source, target) pair, as a uint8 array in input order.

    Deterministic for a seed; no source and no target sentence has pairs in two roles; the
    held-out roles get exactly ``valid`` and ``test`` pairs whenever the components allow it.
    """
    src_keys, tgt_keys = array("Q"), array("Q")
    for s, t in pairs:
        src_keys.append(sentence_key(s))
        tgt_keys.append(sentence_key(t))
    src_h, tgt_h = _hashes(src_keys), _hashes(tgt_keys)
    src_uniq, src_ids = np.unique(src_h, return_inverse=True)
    tgt_uniq, tgt_ids = np.unique(tgt_h, return_inverse=True)
    src_ids, tgt_ids = src_ids.reshape(-1), tgt_ids.reshape(-1)
    duplicates = len(src_h) - len(np.unique(src_ids.astype(np.int64) * max(len(tgt_uniq), 1) + tgt_ids))
    labels = _components(src_ids, tgt_ids, len(src_uniq), len(tgt_uniq))
    counts = np.bincount(labels) if len(labels) else np.zeros(0, dtype=np.int64)
    group_role = np.full(len(counts), TRAIN, dtype=np.uint8)
    order = np.random.default_rng(seed).permutation(len(counts))
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
                skipped.append(g)  # too many pairs to fit exactly: leave for the next role / train
        order = np.concatenate([np.asarray(skipped, dtype=order.dtype), order[pos:]])
        pos = 0
    roles = group_role[labels]
    sizes = split_sizes(roles)
    empty = [name for name, n in sizes.items() if n == 0]
    if empty:
        raise InputError(
            f"{option}: the {empty[0]} split ends up empty ({len(roles)} pairs in {len(counts)} groups of pairs "
            f"sharing a sentence; asked valid={valid}, test={test}); lower {option}.valid/test or use a larger corpus"
        )
    return Split(
        roles=roles,
        distinct_sources=len(src_uniq),
        distinct_targets=len(tgt_uniq),
        duplicate_pairs=int(duplicates),
        components=len(counts),
        largest_component=int(counts.max()) if len(counts) else 0,
    )


def split_sizes(roles: np.ndarray) -> dict[str, int]:
    return {name: int((roles == r).sum()) for r, name in ROLE_NAMES.items()}

"""The seeded split of a corpus without one: deterministic, sizes as configured, no shared source sentence."""

import random

import numpy as np
import pytest

from s2s.data.split import TEST, TRAIN, VALID, assign_split, split_sizes
from s2s.io import InputError


def corpus(n_sentences: int = 3000, seed: int = 3) -> list[str]:
    """Source sides sorted by length, many sentences repeated 1-4 times (as Tatoeba's English side)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_sentences):
        lines += [f"sentence number {i} " + "word " * (i % 7)] * rng.randint(1, 4)
    return sorted(lines, key=len)


def test_sizes_as_configured():
    src = corpus()
    roles = assign_split(src, valid=200, test=300, seed=1)
    assert split_sizes(roles) == {"train": len(src) - 500, "valid": 200, "test": 300}


def test_no_source_sentence_in_two_splits():
    src = corpus()
    roles = assign_split(src, valid=200, test=300, seed=1)
    seen: dict[str, set[int]] = {}
    for s, r in zip(src, roles, strict=True):
        seen.setdefault(s, set()).add(int(r))
    assert all(len(r) == 1 for r in seen.values())
    assert {r for rs in seen.values() for r in rs} == {TRAIN, VALID, TEST}


def test_deterministic_per_seed_and_seed_matters():
    src = corpus()
    a = assign_split(src, 200, 300, seed=5)
    b = assign_split(iter(src), 200, 300, seed=5)  # a stream works as well as a list
    c = assign_split(src, 200, 300, seed=6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_held_out_sentences_are_spread_over_the_sorted_corpus():
    src = corpus()
    roles = assign_split(src, 200, 300, seed=1)
    test_positions = np.flatnonzero(roles == TEST)
    assert test_positions.min() < len(src) // 10 and test_positions.max() > 9 * len(src) // 10


def test_split_that_ends_up_empty():
    src = ["a", "a", "b", "c"]
    with pytest.raises(InputError, match=r"data\.split: the train split ends up empty"):
        assign_split(src, valid=2, test=2, seed=1)

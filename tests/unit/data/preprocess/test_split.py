"""The seeded split of a corpus without one: deterministic, sizes as configured, no sentence of
either side in two splits."""

import random

import numpy as np
import pytest

from s2s.common.io import InputError
from s2s.data.preprocess.split import TEST, TRAIN, VALID, assign_split, split_sizes


def corpus(n_sentences: int = 3000, seed: int = 3) -> list[tuple[str, str]]:
    """Pairs sorted by length, many sources repeated 1-4 times with distinct translations (as
    Tatoeba's English side)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n_sentences):
        src = f"sentence number {i} " + "word " * (i % 7)
        lines += [(src, f"Satz {i} Übersetzung {k}") for k in range(rng.randint(1, 4))]
    return sorted(lines, key=lambda p: len(p[0]))


def test_sizes_as_configured():
    src = corpus()
    roles = assign_split(src, valid=200, test=300, seed=1).roles
    assert split_sizes(roles) == {"train": len(src) - 500, "valid": 200, "test": 300}


def test_no_source_sentence_in_two_splits():
    src = corpus()
    roles = assign_split(src, valid=200, test=300, seed=1).roles
    seen: dict[str, set[int]] = {}
    for (s, _), r in zip(src, roles, strict=True):
        seen.setdefault(s, set()).add(int(r))
    assert all(len(r) == 1 for r in seen.values())
    assert {r for rs in seen.values() for r in rs} == {TRAIN, VALID, TEST}


def test_deterministic_per_seed_and_seed_matters():
    src = corpus()
    a = assign_split(src, 200, 300, seed=5).roles
    b = assign_split(iter(src), 200, 300, seed=5).roles  # a stream works as well as a list
    c = assign_split(src, 200, 300, seed=6).roles
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_held_out_sentences_are_spread_over_the_sorted_corpus():
    src = corpus()
    roles = assign_split(src, 200, 300, seed=1).roles
    test_positions = np.flatnonzero(roles == TEST)
    assert test_positions.min() < len(src) // 10 and test_positions.max() > 9 * len(src) // 10


def test_split_that_ends_up_empty():
    src = [("a", "x"), ("a", "y"), ("b", "z"), ("c", "w")]
    with pytest.raises(InputError, match=r"data\.split: the train split ends up empty"):
        assign_split(src, valid=2, test=2, seed=1)


def test_pairs_sharing_only_the_target_stay_together():
    """Tatoeba: "I fainted." and "I blacked out." both translate to "Ich wurde ohnmächtig."; split by
    English only, one could be tested while the other trains on the very German sentence."""
    pairs = [(f"source {i}", f"target {i}") for i in range(200)]
    pairs += [(f"other source {i}", f"target {i}") for i in range(200)]  # same target, other source
    pairs += [(f"source {i}", f"third target {i}") for i in range(0, 200, 2)]  # and a chain via the source
    for seed in range(5):
        result = assign_split(pairs, valid=30, test=30, seed=seed)
        for side in (0, 1):
            roles_of: dict[str, set[int]] = {}
            for pair, role in zip(pairs, result.roles, strict=True):
                roles_of.setdefault(pair[side], set()).add(int(role))
            assert all(len(r) == 1 for r in roles_of.values()), f"side {side} shared across splits (seed {seed})"
    assert result.components == 200
    assert split_sizes(result.roles) == {"train": len(pairs) - 60, "valid": 30, "test": 30}


def test_counts_of_components_and_duplicates():
    pairs = [("a", "x"), ("a", "x"), ("b", "x"), ("c", "y"), ("d", "z"), ("e", "w")]
    result = assign_split(pairs, valid=1, test=1, seed=1)
    assert result.stats() == {
        "pairs": 6,
        "distinct_sources": 5,
        "distinct_targets": 4,
        "duplicate_pairs": 1,
        "components": 4,
        "largest_component": 3,
    }

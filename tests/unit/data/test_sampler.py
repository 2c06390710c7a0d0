"""Length-bucketed token batches: coverage, limits, DDP shards, epochs and seeds, resume."""

from __future__ import annotations

import numpy as np
import pytest

from s2s.data.sampler import TokenBatchSampler

LENGTHS = np.random.default_rng(0).integers(2, 40, size=1000)


def test_each_index_once_and_limits_respected() -> None:
    s = TokenBatchSampler(LENGTHS, max_tokens=400, max_sentences=32, shuffle=True, seed=1)
    batches = list(s)
    flat = [i for b in batches for i in b]
    # a single process drops nothing
    assert sorted(flat) == list(range(len(LENGTHS)))
    for b in batches:
        assert len(b) <= 32
        assert max(LENGTHS[b]) * len(b) <= 400
    # bucketing: padding is small compared with random batches
    padded = sum(max(LENGTHS[b]) * len(b) for b in batches)
    assert padded < 1.3 * LENGTHS.sum()


@pytest.mark.parametrize("world", [2, 3, 4])
def test_ddp_shards_are_disjoint_and_equal_length(world: int) -> None:
    shards = [
        list(TokenBatchSampler(LENGTHS, max_tokens=300, shuffle=True, seed=3, num_replicas=world, rank=r))
        for r in range(world)
    ]
    assert len({len(s) for s in shards}) == 1, "every rank must run the same number of steps"
    seen = [i for s in shards for b in s for i in b]
    assert len(seen) == len(set(seen)), "ranks must see disjoint data"
    single = TokenBatchSampler(LENGTHS, max_tokens=300, shuffle=True, seed=3)
    assert len(seen) >= len(LENGTHS) - (world - 1) * max(len(b) for b in single)


def test_shuffle_changes_with_epoch_and_seed_and_is_reproducible() -> None:
    def order(seed: int, epoch: int) -> list[list[int]]:
        s = TokenBatchSampler(LENGTHS, max_sentences=16, seed=seed)
        s.set_epoch(epoch)
        return list(s)

    assert order(1, 0) == order(1, 0)
    assert order(1, 0) != order(1, 1)
    assert order(1, 0) != order(2, 0)


@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_batches_cover_every_sentence_exactly_once(world: int) -> None:
    seen = [
        i
        for r in range(world)
        for b in TokenBatchSampler(LENGTHS[:101], max_sentences=8, shuffle=False, num_replicas=world, rank=r)
        for i in b
    ]
    assert sorted(seen) == list(range(101))


def test_resume_skips_consumed_batches() -> None:
    full = TokenBatchSampler(LENGTHS, max_sentences=16, seed=5)
    full.set_epoch(2)
    expected = list(full)
    resumed = TokenBatchSampler(LENGTHS, max_sentences=16, seed=5)
    resumed.load_state_dict({"epoch": 2, "seed": 5}, consumed=7)
    assert list(resumed) == expected[7:]
    assert list(resumed) == expected, "after the resumed epoch the sampler starts from its beginning again"


def test_requires_a_limit() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        TokenBatchSampler(LENGTHS, max_tokens=None, max_sentences=None)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("world", [1, 2, 3])
def test_len_is_the_number_of_batches_every_epoch(seed: int, world: int) -> None:
    """Lightning reads ``len`` once per run: every epoch must yield exactly that many batches."""
    lengths = np.random.default_rng(seed).integers(1, 60, size=500)
    samplers = [
        TokenBatchSampler(lengths, max_tokens=120, max_sentences=4, seed=seed, num_replicas=world, rank=r)
        for r in range(world)
    ]
    first_len = len(samplers[0])
    for epoch in range(12):
        counts = set()
        for s in samplers:
            s.set_epoch(epoch)
            assert len(s) == first_len, f"epoch {epoch}: len changed"
            counts.add(len(list(s)))
        assert counts == {first_len}, f"epoch {epoch}: ranks yielded {counts}, len says {first_len}"


@pytest.mark.parametrize("world", [1, 2])
def test_token_batches_resume_mid_epoch_on_every_rank(world: int) -> None:
    """A resumed rank yields exactly the rest of its epoch, then full epochs of the same length."""
    for rank in range(world):
        args = {"max_tokens": 120, "max_sentences": 4, "seed": 9, "num_replicas": world, "rank": rank}
        full = TokenBatchSampler(LENGTHS, **args)
        full.set_epoch(3)
        expected = list(full)
        full.set_epoch(4)
        following = list(full)
        resumed = TokenBatchSampler(LENGTHS, **args)
        resumed.load_state_dict({"epoch": 3, "seed": 9}, consumed=11)
        assert len(resumed) == len(expected)
        assert list(resumed) == expected[11:]
        resumed.set_epoch(4)
        assert list(resumed) == following and len(following) == len(expected)

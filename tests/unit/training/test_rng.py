"""Per-rank random state for exact resume: collected, restored, and a rank the checkpoint lacks."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from s2s.training.rng import collect_rng_states, gather_rng_states, restore_rank_states, restore_rng_states

CPU = torch.device("cpu")


def draws() -> tuple[list[float], list[float], list[float]]:
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_restore_replays_every_generator() -> None:
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    saved = collect_rng_states(CPU)
    first = draws()
    assert draws() != first
    restore_rng_states(saved, CPU)
    assert draws() == first


def test_each_rank_restores_its_own_and_an_uncovered_rank_keeps_fresh_ones(caplog) -> None:
    torch.manual_seed(10)
    rank0 = gather_rng_states(CPU, world_size=1)
    rank0_draws = draws()
    torch.manual_seed(11)
    rank1 = collect_rng_states(CPU)
    rank1_draws = draws()
    saved = {"per_rank": [rank0["per_rank"][0], rank1]}
    restore_rank_states(saved, 1, CPU)
    assert draws() == rank1_draws
    restore_rank_states(saved, 0, CPU)
    assert draws() == rank0_draws
    before = draws()
    with caplog.at_level(logging.WARNING, logger="s2s.training.rng"):
        restore_rank_states(saved, 2, CPU)
    assert "rank 2: the checkpoint holds random states for 2 rank(s) only" in caplog.text
    assert draws() != before  # nothing restored: the streams just go on


def test_older_checkpoints_without_per_rank_restore_rank_0() -> None:
    torch.manual_seed(5)
    old = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1])}
    expected = torch.rand(2).tolist(), random.random()
    restore_rank_states(old, 0, CPU)
    assert (torch.rand(2).tolist(), random.random()) == expected

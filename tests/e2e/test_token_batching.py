"""Token batching through the real train script: every epoch ends with its validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import copy_tiny, run_script
from helpers.e2e_checks import validation_steps

pytestmark = pytest.mark.slow


def test_every_epoch_is_validated_with_token_batches(tiny_data: Path, tmp_path: Path) -> None:
    # the settings: with them the number of batches changed from epoch to epoch, and the
    # second epoch ended before its validation (one row in valid.csv for two epochs)
    paths = copy_tiny(tiny_data, tmp_path)
    epochs = 2
    run_script(
        "train",
        *paths,
        "seed=1",
        "train.batch.max_tokens=120",
        "train.batch.max_sentences=4",
        f"trainer.max_epochs={epochs}",
        "logger=none",
    )
    steps = validation_steps(tmp_path)
    assert len(steps) == epochs, f"validation rows at steps {steps}"
    per_epoch = steps[0]
    assert steps == [per_epoch * (e + 1) for e in range(epochs)], "every epoch must have the same batches"
    last = torch.load(tmp_path / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == epochs * per_epoch

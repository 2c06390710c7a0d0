"""Token batching through the real train script: every epoch ends with its validation."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import copy_tiny, run_script
from helpers.e2e_checks import validation_steps

pytestmark = pytest.mark.slow


EPOCHS = 2


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # the settings: with them the number of batches changed from epoch to epoch, and the
    # second epoch ended before its validation (one row in valid.csv for two epochs)
    tmp_path = tmp_path_factory.mktemp("token-batching")
    paths = copy_tiny(tiny_data, tmp_path)
    run_script(
        "train",
        *paths,
        "seed=1",
        "train.batch.max_tokens=120",
        "train.batch.max_sentences=4",
        f"trainer.max_epochs={EPOCHS}",
        "logger=none",
    )
    return tmp_path


def test_every_epoch_is_validated_with_token_batches(trained: Path) -> None:
    steps = validation_steps(trained)
    assert len(steps) == EPOCHS, f"validation rows at steps {steps}"
    per_epoch = steps[0]
    assert steps == [per_epoch * (e + 1) for e in range(EPOCHS)], "every epoch must have the same batches"


def test_last_checkpoint_is_the_last_step(trained: Path) -> None:
    """last.ckpt is refreshed by every validation, also one that did not improve val_bleu (it held
    the last periodic save before: step 550 of 554, and a resume replayed those steps)."""
    per_epoch = validation_steps(trained)[0]
    last = torch.load(trained / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == EPOCHS * per_epoch

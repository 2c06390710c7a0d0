"""Training as its user sees it on the console: one line per epoch, rounded figures, the model summary."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import SHORT_TRAINING, copy_tiny, run_script

EPOCH_LINE = re.compile(
    r"epoch (\d+)/2 step (\d+) train loss \d+\.\d{3} val loss \d+\.\d{3} BLEU \d+\.\d{2} "
    r"[\d,]+ tok/s elapsed \d+m\d\ds remaining \d+m\d\ds"
)


def test_training_prints_one_line_per_epoch_and_a_model_summary(tiny_data: Path, tmp_path: Path) -> None:
    """A real tiny training: one epoch line each epoch, rounded figures, and the model summary on request."""
    paths = copy_tiny(tiny_data, tmp_path)
    out = run_script("train", *paths, "logger=none", SHORT_TRAINING, "+trainer.enable_model_summary=true")
    text = out.stdout + out.stderr
    epochs = [m.groups() for m in EPOCH_LINE.finditer(text)]
    assert [e for e, _ in epochs] == ["1", "2"], text[-3000:]
    assert int(epochs[0][1]) < int(epochs[1][1])
    assert "Trainable params" in text  # Lightning's model summary
    assert "sync_dist" not in text
    assert not re.search(r"val BLEU \d+\.\d{3,}", text), "figures in log lines are rounded"

"""Training as its user sees it on the console: one line per epoch, rounded figures, the model summary,
and nothing a newcomer reads as trouble."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from conftest import SHORT_TRAINING, copy_tiny, run_script

EPOCH_LINE = re.compile(
    r"epoch (\d+)/2 step (\d+) train loss \d+\.\d{3} val loss \d+\.\d{3} BLEU \d+\.\d{2} "
    r"[\d,]+ tok/s elapsed \d+m\d\ds remaining \d+m\d\ds"
)
# what Lightning prints on a first run that is no news to the user (issue 34, item 14)
NOISE = {
    "Lightning's warning about the folder the stage itself stamped": "exists and is not empty",
    "Lightning's cloud-logging and cloud-upload tips": "Tip: For seamless cloud",
    "their products": "litlogger",
    "a FLOPs count Lightning makes only with an example input (else 0)": "FLOPs",
    "Lightning's note that the summary is the stage's own": "Skipping setting a default",
}


@pytest.fixture(scope="module")
def first_run(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The console of a real tiny training, the first in its folder, with the model summary on."""
    base = tmp_path_factory.mktemp("console")
    paths = copy_tiny(tiny_data, base)
    out = run_script("train", *paths, "logger=none", SHORT_TRAINING, "+trainer.enable_model_summary=true")
    return out.stdout + out.stderr


def test_training_prints_one_line_per_epoch_and_a_model_summary(first_run: str) -> None:
    """One epoch line each epoch, rounded figures, and the model summary on request."""
    text = first_run
    epochs = [m.groups() for m in EPOCH_LINE.finditer(text)]
    assert [e for e, _ in epochs] == ["1", "2"], text[-3000:]
    assert int(epochs[0][1]) < int(epochs[1][1])
    assert "Trainable params" in text and "Seq2Seq" in text  # the model summary, with its layers
    assert "sync_dist" not in text
    assert not re.search(r"val BLEU \d+\.\d{3,}", text), "figures in log lines are rounded"


def test_a_first_run_prints_nothing_a_newcomer_reads_as_trouble(first_run: str) -> None:
    found = {what: [line for line in first_run.splitlines() if text in line] for what, text in NOISE.items()}
    assert not {what: lines for what, lines in found.items() if lines}

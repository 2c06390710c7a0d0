"""Resume is exact after any sequence of kills (issue 35 item 10).

A training is stopped several times, each time at an exact batch (SIGKILL: no save; SIGTERM: the
project's save-and-stop), and resumed with the same command until it finishes; its last weights
must equal an uninterrupted run's, bit for bit, and it must end at the same step.

The sequences that broke before are here as fixed cases, beside a few drawn at random (a fixed
seed, so a failure reproduces):

- a SIGKILL right after an epoch's validation, a resume, a SIGTERM 10 steps into the next epoch, a
  resume (the issue's sequence). With a step budget (``trainer.max_steps``) Lightning counted the
  finished epoch twice: the sampler drew the next epoch's batches an epoch early;
- a SIGTERM at an epoch's last batch (saved before its validation), a resume, a SIGTERM one step
  later, a resume: the second resume replayed the epoch's first batches;
- any resume from an epoch's end with the default plateau schedule: its step for that epoch was
  lost (Lightning steps an epoch scheduler after the epoch-end checkpoints, and not when it
  restarts), so the learning rate differed afterwards;
- last.ckpt was not refreshed by a validation that did not improve val_bleu.

Batch numbers count the batches one process starts (``tests/helpers/signal_at_batch.py``); a signal
whose batch never comes is not sent, and that process simply finishes.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import HELPERS, ROOT, copy_tiny, run_script
from helpers.e2e_checks import validation_steps

pytestmark = pytest.mark.slow

# the tiny preset: 25 batches an epoch. The default recipe's plateau schedule (patience 0: every
# validation without a gain halves the rate, so a lost step shows) and early stopping
EPOCHS = ["trainer.max_epochs=3", "optim.scheduler=plateau", "optim.patience=0", "train.early_stopping_patience=2"]
STEPS = ["trainer.max_epochs=3", "trainer.max_steps=57", "optim.scheduler=plateau", "optim.patience=0"]
COMMON = ["train.save_every_n_steps=5", "logger=none"]
BUDGETS = {"epochs": EPOCHS, "steps": STEPS}

Sequence = tuple[tuple[int, str], ...]

FIXED: list[tuple[str, Sequence]] = [
    ("epochs", ((25, "SIGKILL"), (10, "SIGTERM"))),
    ("epochs", ((24, "SIGTERM"), (1, "SIGTERM"), (22, "SIGTERM"))),
    ("steps", ((25, "SIGKILL"), (10, "SIGTERM"))),
    ("steps", ((24, "SIGTERM"), (1, "SIGTERM"))),
]


def drawn(count: int, seed: int = 35) -> list[tuple[str, Sequence]]:
    """Sequences of two or three stops at random batches, near epoch ends more often than not."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        stops = []
        for _ in range(rng.choice((2, 3))):
            near_end = rng.random() < 0.6
            at = rng.choice((23, 24, 25, 26, 49, 50)) if near_end else rng.randrange(0, 60)
            stops.append((at, rng.choice(("SIGKILL", "SIGTERM"))))
        cases.append((rng.choice(sorted(BUDGETS)), tuple(stops)))
    return cases


CASES = FIXED + drawn(2)


def case_id(case: tuple[str, Sequence]) -> str:
    budget, stops = case
    return budget + "-" + "-".join(f"{name[3:].lower()}{at}" for at, name in stops)


def last_state(run: Path) -> tuple[int, dict[str, torch.Tensor]]:
    ckpt = torch.load(run / "checkpoints/last.ckpt", map_location="cpu", weights_only=True)
    return ckpt["global_step"], ckpt["state_dict"]


@pytest.fixture(scope="module")
def straight(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, dict]]:
    """Each budget's uninterrupted run: its last step and weights."""
    runs = {}
    for budget, overrides in BUDGETS.items():
        base = tmp_path_factory.mktemp(f"straight-{budget}")
        run_script("train", *copy_tiny(tiny_data, base), *overrides, *COMMON)
        runs[budget] = last_state(base)
        if budget == "epochs":
            assert validation_steps(base)[:2] == [25, 50], "the fixed cases assume 25 batches an epoch"
    return runs


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_any_sequence_of_kills_resumes_to_the_uninterrupted_weights(
    tiny_data: Path, tmp_path: Path, straight: dict[str, tuple[int, dict]], case: tuple[str, Sequence]
) -> None:
    budget, stops = case
    paths = copy_tiny(tiny_data, tmp_path)
    command = ["src/train.py", *paths, *BUDGETS[budget], *COMMON]
    for at, name in stops:
        result = subprocess.run(
            [sys.executable, str(HELPERS / "signal_at_batch.py"), str(at), name, *command],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
        )
        sent = f"sending {name} at batch {at}" in result.stdout
        expected = (-signal.SIGKILL if name == "SIGKILL" else 128 + signal.SIGTERM) if sent else 0
        assert result.returncode == expected, result.stdout[-2000:] + result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
    run_script("train", *command[1:])  # the same command, until it finishes
    step, weights = last_state(tmp_path)
    expected_step, expected_weights = straight[budget]
    assert step == expected_step
    assert weights.keys() == expected_weights.keys()
    for name, value in expected_weights.items():
        assert torch.equal(weights[name], value), name

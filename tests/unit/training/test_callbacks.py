"""s2s.training.callbacks: a signal saves last.ckpt once and exits 128 + n; every checkpoint carries the stamp."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2s.training.callbacks import SaveOnSignal, StampCheckpoints, TrainingInterrupted
from s2s.training.resume import CKPT_KEY


class FakeTrainer:
    """What the callback uses of a Trainer: one rank, a step count, save_checkpoint recorded."""

    world_size, global_step = 1, 42

    def __init__(self) -> None:
        self.saved: list[Path] = []

    def save_checkpoint(self, path: Path) -> None:
        self.saved.append(path)


@pytest.fixture
def handlers():
    """The process's handlers for the callback's signals, restored afterwards."""
    before = {sig: signal.getsignal(sig) for sig in SaveOnSignal.SIGNALS}
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


def test_exit_code_is_128_plus_the_signal() -> None:
    stop = TrainingInterrupted(signal.SIGTERM)
    assert isinstance(stop, SystemExit) and stop.code == 128 + 15 and stop.signum == signal.SIGTERM
    assert TrainingInterrupted(signal.SIGUSR1).code == 128 + 10


def test_a_signal_saves_last_ckpt_at_the_next_optimizer_step_and_stops(tmp_path: Path, handlers) -> None:
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    module = SimpleNamespace(device="cpu")
    callback.on_train_start(trainer, module)  # where the handlers are installed (Lightning's are replaced)

    def batch(idx: int, steps: bool) -> None:
        callback.on_train_batch_start(trainer, module, None, idx)
        trainer.global_step += steps  # an accumulation window's first batch makes no optimizer step
        callback.on_train_batch_end(trainer, module, None, None, idx)

    batch(0, steps=True)
    assert trainer.saved == []  # no signal yet: training goes on
    os.kill(os.getpid(), signal.SIGUSR1)
    assert callback.received == signal.SIGUSR1  # the handler only records it
    assert trainer.saved == []
    batch(1, steps=False)  # inside a window: its gradient would be lost, so no save yet
    assert trainer.saved == []
    with pytest.raises(TrainingInterrupted) as stop:
        batch(2, steps=True)
    assert stop.value.code == 128 + signal.SIGUSR1
    assert trainer.saved == [tmp_path / "last.ckpt"]
    # Lightning's own SIGTERM path afterwards does not save a second time
    callback.on_exception(trainer, module, SIGTERMException())
    assert trainer.saved == [tmp_path / "last.ckpt"]


def test_lightnings_sigterm_exception_saves_once(tmp_path: Path) -> None:
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    callback.on_exception(trainer, None, RuntimeError("not a signal"))
    assert trainer.saved == []
    callback.on_exception(trainer, None, SIGTERMException())
    callback.on_exception(trainer, None, SIGTERMException())
    assert trainer.saved == [tmp_path / "last.ckpt"]


def test_every_checkpoint_gets_its_own_copy_of_the_stamp() -> None:
    stamp = StampCheckpoints("fp1", "sha1")
    first, second = {}, {"state_dict": {}}
    stamp.on_save_checkpoint(None, None, first)
    stamp.on_save_checkpoint(None, None, second)
    assert first[CKPT_KEY] == second[CKPT_KEY] == {"fingerprint": "fp1", "spm_sha256": "sha1"}
    first[CKPT_KEY]["fingerprint"] = "changed"
    assert second[CKPT_KEY]["fingerprint"] == "fp1"

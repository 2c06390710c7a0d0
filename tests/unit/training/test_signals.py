"""s2s.training.signals: a signal saves last.ckpt once, at a point a resume is exact from, and exits 128 + n."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2s.training.signals import SaveOnSignal, TrainingInterrupted

from helpers.fake_trainer import FakeTrainer


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


def signalled_at_last_batch(tmp_path: Path) -> tuple[SaveOnSignal, FakeTrainer, SimpleNamespace]:
    """A SIGTERM during an epoch's last batch, the batch ended (its validation follows)."""
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    module = SimpleNamespace(device="cpu")
    callback.on_train_start(trainer, module)
    callback.on_train_batch_start(trainer, module, None, 7)
    os.kill(os.getpid(), signal.SIGTERM)
    trainer.global_step += 1
    trainer.is_last_batch = True
    callback.on_train_batch_end(trainer, module, None, None, 7)
    return callback, trainer, module


def test_a_signal_at_an_epochs_last_batch_stops_after_its_validation(tmp_path: Path, handlers) -> None:
    """A checkpoint written at an epoch's last batch, before its validation, resumes into an epoch
    Lightning does not count as started (later resumes replayed batches): the signal is acted on
    at the epoch's end instead, after the validation, whose checkpoint LastCheckpoint writes."""
    callback, trainer, module = signalled_at_last_batch(tmp_path)  # no stop, no save there
    assert trainer.saved == []
    with pytest.raises(TrainingInterrupted) as stop:
        callback.on_train_epoch_end(trainer, module)  # after the validation and its checkpoints
    assert stop.value.code == 128 + signal.SIGTERM
    assert trainer.saved == []  # LastCheckpoint saved at the validation's end
    # with no validation after the batch (check_val_every_n_epoch=2) it saves and stops at once
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    trainer.check_val_every_n_epoch, trainer.is_last_batch = 2, True
    callback.on_train_start(trainer, module)
    callback.on_train_batch_start(trainer, module, None, 7)
    os.kill(os.getpid(), signal.SIGTERM)
    trainer.global_step += 1
    with pytest.raises(TrainingInterrupted):
        callback.on_train_batch_end(trainer, module, None, None, 7)
    assert trainer.saved == [tmp_path / "last.ckpt"]


def test_a_signal_at_the_last_step_of_an_early_stopped_run_lets_it_finish(tmp_path: Path, handlers) -> None:
    callback, trainer, module = signalled_at_last_batch(tmp_path)
    trainer.should_stop = True  # early stopping at this validation: training ends anyway
    callback.on_train_epoch_end(trainer, module)
    assert trainer.saved == []


def test_lightnings_sigterm_exception_saves_once(tmp_path: Path) -> None:
    callback, trainer = SaveOnSignal(tmp_path), FakeTrainer()
    callback.on_exception(trainer, None, RuntimeError("not a signal"))
    assert trainer.saved == []
    callback.on_exception(trainer, None, SIGTERMException())
    callback.on_exception(trainer, None, SIGTERMException())
    assert trainer.saved == [tmp_path / "last.ckpt"]

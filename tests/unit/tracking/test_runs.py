"""How a run ends (issue 34, item 10): a training or an evaluation stopped by a signal is KILLED, an
error FAILED, a finished one FINISHED."""

from __future__ import annotations

import signal

import pytest
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2s.common.io import InputError
from s2s.tracking.evaluation_runs import RunKilled
from s2s.tracking.runs import end_status
from s2s.training.signals import TrainingInterrupted


def raised_while_handling(first: BaseException, then: BaseException) -> BaseException:
    """``then`` as Python raises it inside an ``except`` block for ``first`` (its ``__context__``)."""
    try:
        try:
            raise first
        except BaseException:
            raise then  # noqa: B904 - the implicit context is the point
    except BaseException as err:
        return err


@pytest.mark.parametrize(
    "err, status",
    [
        (None, "FINISHED"),
        (TrainingInterrupted(signal.SIGTERM), "KILLED"),
        (TrainingInterrupted(signal.SIGUSR1), "KILLED"),
        (RunKilled(signal.SIGHUP), "KILLED"),
        (KeyboardInterrupt(), "KILLED"),
        (SIGTERMException(), "KILLED"),  # Lightning's stop on SIGTERM outside our handler (validation)
        (raised_while_handling(KeyboardInterrupt(), SystemExit(1)), "KILLED"),  # Lightning's Ctrl-C exit
        (ValueError("non-finite loss"), "FAILED"),
        (InputError("data/prepared/train.npz: not found"), "FAILED"),
        (SystemExit(2), "FAILED"),
        (raised_while_handling(ValueError("x"), OSError("disk full")), "FAILED"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException | type(None)) else v,
)
def test_a_stop_by_a_signal_is_killed_an_error_failed(err: BaseException | None, status: str) -> None:
    assert end_status(err) == status

"""Run the train stage, sending this process a signal when its N-th training batch starts.

    python tests/helpers/signal_at_batch.py N SIGNAL src/train.py override...

A test stops a real training at an exact batch (for instance inside a gradient-accumulation
window) instead of guessing the moment with a timer: a callback that sends the signal is added to
the stage's own callbacks (``s2s.training.run.make_callbacks``).
"""

import os
import runpy
import signal
import sys

from paths import SRC  # tests/helpers/paths.py: a script's own folder is sys.path[0]

sys.path.insert(0, str(SRC))

import pytorch_lightning as pl  # noqa: E402

import s2s.training.run  # noqa: E402

at, signame, script, *overrides = sys.argv[1:]
signum = signal.Signals[signame]


class SendSignal(pl.Callback):
    """Sends ``signum`` to this process at the start of its ``at``-th training batch (0-based)."""

    def __init__(self) -> None:
        self.seen = 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.seen == int(at):
            print(f"sending {signum.name} at batch {self.seen} (global step {trainer.global_step})", flush=True)
            os.kill(os.getpid(), signum)
        self.seen += 1


real_make_callbacks = s2s.training.run.make_callbacks


def make_callbacks(*args, **kwargs):
    best, callbacks = real_make_callbacks(*args, **kwargs)
    return best, [SendSignal(), *callbacks]


s2s.training.run.make_callbacks = make_callbacks
sys.argv = [script, *overrides]
runpy.run_path(script, run_name="__main__")

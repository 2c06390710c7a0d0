"""A Lightning callback that holds a real training at its end until the test lets it go.

Given to the train stage as a user's callback (``+trainer.callbacks=[{_target_:helpers.gate.
PauseAtTrainEnd,folder:<dir>}]``, with the project's ``tests/`` on ``PYTHONPATH``), it writes
``<dir>/ready`` once training has ended (every curve logged, nothing exported yet) and waits for
``<dir>/go``: a test does something at that exact point (a second ``dvc exp run``) instead of
guessing the moment with a timer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytorch_lightning as pl

WAIT_S = 900  # only a test that never lets go waits this long


class PauseAtTrainEnd(pl.Callback):
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "ready").write_text("ready\n")
        deadline = time.monotonic() + WAIT_S
        while not (self.folder / "go").exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.folder}/go never appeared")
            time.sleep(0.1)

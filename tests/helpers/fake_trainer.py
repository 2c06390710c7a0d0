"""A stand-in for the few Trainer attributes the checkpoint and signal callbacks read."""

from __future__ import annotations

from pathlib import Path


class FakeTrainer:
    """What the callback uses of a Trainer: one rank, a step count, save_checkpoint recorded."""

    world_size, global_step = 1, 42
    # an epoch of several batches, validated at its end; a test sets is_last_batch at its last one
    current_epoch, check_val_every_n_epoch, num_val_batches = 0, 1, [3]
    is_last_batch, should_stop = False, False

    def __init__(self) -> None:
        self.saved: list[Path] = []

    def save_checkpoint(self, path: Path) -> None:
        self.saved.append(path)

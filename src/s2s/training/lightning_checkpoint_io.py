"""How training writes its Lightning checkpoints: atomically.

Kept apart from ``s2s.models.model_file`` (model files, which translate and evaluate read) so that loading a
model never imports Lightning: translate and evaluate start seconds sooner.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from s2s.common.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, made atomic: a temporary file in the destination folder,
    fsync, then ``os.replace``. A kill at any moment leaves the old or the new checkpoint, never a
    truncated one (Lightning's own writer may copy across filesystems with truncation).

    ``after_save`` is called with the path once a checkpoint is durably in place (the train stage
    retires a finished run's files only then)."""

    def __init__(self, after_save: Callable[[Path], None] | None = None):
        super().__init__()
        self.after_save = after_save

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                torch.save(checkpoint, fh)
                fh.flush()
                os.fsync(fh.fileno())
        dir_fd = os.open(Path(path).parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        if self.after_save is not None:
            self.after_save(Path(path))

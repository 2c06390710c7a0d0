"""s2s.training.lightning_checkpoint_io: checkpoint writes are atomic, within the destination folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from s2s.training.lightning_checkpoint_io import AtomicCheckpointIO


def test_checkpoint_write_is_a_rename_within_the_folder(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "ckpts" / "last.ckpt"
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (renames.append((Path(a), Path(b))), real_replace(a, b))[1])
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)
    assert renames and all(a.parent == b.parent == target.parent for a, b in renames)
    assert torch.load(target, weights_only=True) == {"step": 1}


def test_a_failed_checkpoint_write_keeps_the_old_file(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": 1}, target)

    def broken(obj, fh, *a, **k):
        fh.write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken)
    with pytest.raises(OSError):
        AtomicCheckpointIO().save_checkpoint({"step": 2}, target)
    monkeypatch.undo()
    assert torch.load(target, weights_only=True) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]



"""Checkpoint files: atomic writes in the destination folder, readable errors for bad init weights,
and no export of another configuration's checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from s2s.common.io import InputError
from s2s.models.build import build_model
from s2s.models.model_file import save_model_file
from s2s.training import resume
from s2s.training.checkpoint_files import load_init_weights
from s2s.training.export import check_own_checkpoint
from s2s.training.lightning_checkpoint_io import AtomicCheckpointIO

from conftest import small_model_config


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


def test_random_bytes_as_init_weights_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "noise.pt"
    bad.write_bytes(os.urandom(4096))
    spm = tmp_path / "spm.model"
    spm.write_bytes(b"vocab")
    with pytest.raises(InputError) as err:
        load_init_weights(bad, spm)
    assert "train.init_from" in str(err.value) and "\n" not in str(err.value)


def test_init_weights_of_another_vocabulary_of_the_same_size_are_refused(tmp_path: Path) -> None:
    cfg = small_model_config("bilstm_attn")
    model = build_model(cfg, 50)
    theirs, ours = tmp_path / "their_spm.model", tmp_path / "spm.model"
    theirs.write_bytes(b"pieces A")
    ours.write_bytes(b"pieces B")
    save_model_file(tmp_path / "model.pt", model.state_dict(), cfg, 50, theirs)
    with pytest.raises(InputError, match="another SentencePiece vocabulary"):
        load_init_weights(tmp_path / "model.pt", ours)
    assert load_init_weights(tmp_path / "model.pt", theirs).keys() == model.state_dict().keys()


def test_a_checkpoint_of_another_configuration_is_never_exported(tmp_path: Path) -> None:
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {}, resume.CKPT_KEY: {"fingerprint": "other"}}, path)
    with pytest.raises(InputError, match="another configuration"):
        check_own_checkpoint(path, "mine")
    check_own_checkpoint(path, "other")

"""s2s.training.checkpoint_files: initial weights (``train.init_from``) that are not a model file, or were
trained with another vocabulary, are a one-line error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s2s.common.io import InputError
from s2s.models.build import build_model
from s2s.models.model_file import save_model_file
from s2s.training.checkpoint_files import load_init_weights

from conftest import small_model_config


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

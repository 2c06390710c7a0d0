"""``load_decoding_model``: the one way evaluate and translate load a model file for decoding."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2s.common.io import InputError
from s2s.inference.translator import load_decoding_model
from s2s.models.build import build_model
from s2s.models.model_file import save_model_file

from conftest import small_model_config

VOCAB = 12


def saved_model(tmp_path: Path) -> tuple[Path, Path, dict[str, torch.Tensor]]:
    spm = tmp_path / "spm.model"
    spm.write_bytes(b"not really a sentencepiece model, only hashed")
    cfg = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    torch.manual_seed(0)
    state = build_model(cfg, VOCAB).state_dict()
    save_model_file(tmp_path / "model.pt", state, cfg, VOCAB, spm)
    return tmp_path / "model.pt", spm, state


def test_loads_moves_and_compiles_as_decode_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model_file, spm, state = saved_model(tmp_path)
    compiled: list[str | None] = []
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: compiled.append(mode) or fn)
    model = load_decoding_model(model_file, spm, {"device": "cpu", "compile": "reduce-overhead"})
    assert compiled == ["reduce-overhead"]
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    compiled.clear()
    load_decoding_model(model_file, spm, {"device": "cpu", "compile": False})
    assert compiled == []


def test_a_model_of_another_vocabulary_is_refused(tmp_path: Path) -> None:
    model_file, _, _ = saved_model(tmp_path)
    other = tmp_path / "other.model"
    other.write_bytes(b"another vocabulary")
    with pytest.raises(InputError):
        load_decoding_model(model_file, other, {"device": "cpu"})

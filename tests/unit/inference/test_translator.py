"""s2s.inference.translator: ``load_decoding_model`` (the one way evaluate and translate load a model file
for decoding) and the language tags a model knows."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from s2s.common.io import InputError
from s2s.data.vocab import Vocabulary
from s2s.inference.translator import check_target_lang, language_tags, load_decoding_model
from s2s.models.build import build_model
from s2s.models.model_file import save_model_file

from conftest import small_model_config
from helpers.tiny_models import tagged_vocabulary

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


@pytest.fixture(scope="module")
def tagged_vocab(tmp_path_factory: pytest.TempPathFactory) -> Vocabulary:
    return tagged_vocabulary(tmp_path_factory.mktemp("spm"))


def test_known_language_tags(tagged_vocab: Vocabulary) -> None:
    assert language_tags(tagged_vocab) == ["<2de>", "<2en>"]
    check_target_lang(tagged_vocab, "de")
    check_target_lang(tagged_vocab, "en")
    with pytest.raises(InputError, match=r"translate.target_lang=fr: .*<2fr> \(it knows de, en\)"):
        check_target_lang(tagged_vocab, "fr")
    with pytest.raises(InputError, match="translate.target_lang is not set.*de, en"):
        check_target_lang(tagged_vocab, None)


def test_a_model_folder_translates_with_its_own_vocabulary(tmp_path: Path) -> None:
    """``models/`` and the DVC artifact ``translator`` hold their ``spm.model``: a folder's own wins;
    a model file, or a folder without one (an older export), takes ``translate.spm``."""
    from s2s.inference.translator import model_files

    folder = tmp_path / "translator"
    folder.mkdir()
    (folder / "model.pt").write_bytes(b"weights")
    default = tmp_path / "data/prepared/spm.model"
    assert model_files(folder, default) == (folder / "model.pt", default)
    (folder / "spm.model").write_bytes(b"vocabulary")
    assert model_files(folder, default) == (folder / "model.pt", folder / "spm.model")
    assert model_files(folder / "model.pt", default) == (folder / "model.pt", default)

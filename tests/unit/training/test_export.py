"""s2s.training.export: only this run's checkpoints are exported, and the weights chosen are the ones named."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import OmegaConf

from s2s.common.io import InputError
from s2s.training.export import check_own_checkpoint, choose_weights
from s2s.training.resume import CKPT_KEY

FP = "fp-of-this-run"


def write_ckpt(path: Path, weight: float, fingerprint: str | None = FP, mtime: int = 1_000_000) -> Path:
    state = {"model.w": torch.full((2,), weight), "model.steps": torch.tensor([3]), "other.x": torch.ones(1)}
    ckpt = {"state_dict": state}
    if fingerprint is not None:
        ckpt[CKPT_KEY] = {"fingerprint": fingerprint, "spm_sha256": "abc"}
    torch.save(ckpt, path)
    os.utime(path, (mtime, mtime))
    return path


def cfg(tmp_path: Path, average_last: int = 1):
    return OmegaConf.create({"train": {"average_last": average_last}, "paths": {"checkpoint_dir": str(tmp_path)}})


def test_own_checkpoint_passes_and_others_are_refused_naming_the_file(tmp_path: Path) -> None:
    check_own_checkpoint(write_ckpt(tmp_path / "own.ckpt", 1.0), FP)
    other = write_ckpt(tmp_path / "other.ckpt", 1.0, fingerprint="another")
    with pytest.raises(InputError, match=r"other\.ckpt was written by another configuration \(fingerprint another"):
        check_own_checkpoint(other, FP)
    with pytest.raises(InputError, match="fingerprint None"):
        check_own_checkpoint(write_ckpt(tmp_path / "unstamped.ckpt", 1.0, fingerprint=None), FP)


def test_average_of_the_last_checkpoints_by_modification_time(tmp_path: Path) -> None:
    write_ckpt(tmp_path / "epoch=0.ckpt", 100.0, mtime=1_000_000)  # the oldest: left out
    write_ckpt(tmp_path / "epoch=2.ckpt", 4.0, mtime=1_000_300)
    write_ckpt(tmp_path / "epoch=1.ckpt", 2.0, mtime=1_000_200)
    best = SimpleNamespace(best_model_path=str(tmp_path / "epoch=0.ckpt"), best_model_score=torch.tensor(30.0))
    weights, source, bleu = choose_weights(cfg(tmp_path, average_last=2), best, None, FP)
    assert torch.equal(weights["w"], torch.full((2,), 3.0)) and torch.equal(weights["steps"], torch.tensor([3]))
    assert set(weights) == {"w", "steps"}
    assert source == "average of 2: epoch=1.ckpt, epoch=2.ckpt"
    assert bleu is None  # averaged weights were never validated


def test_average_refuses_a_checkpoint_of_another_run(tmp_path: Path) -> None:
    write_ckpt(tmp_path / "epoch=1.ckpt", 2.0, mtime=1_000_200)
    write_ckpt(tmp_path / "epoch=2.ckpt", 4.0, fingerprint="another", mtime=1_000_300)
    with pytest.raises(InputError, match="epoch=2.ckpt"):
        choose_weights(cfg(tmp_path, average_last=2), SimpleNamespace(best_model_path=""), None, FP)


def test_best_checkpoint_with_its_score(tmp_path: Path) -> None:
    path = write_ckpt(tmp_path / "best.ckpt", 7.0)
    best = SimpleNamespace(best_model_path=str(path), best_model_score=torch.tensor(31.5))
    weights, source, bleu = choose_weights(cfg(tmp_path), best, None, FP)
    assert torch.equal(weights["w"], torch.full((2,), 7.0)) and source == "best.ckpt" and bleu == 31.5
    foreign = write_ckpt(tmp_path / "foreign.ckpt", 7.0, fingerprint="another")
    with pytest.raises(InputError, match="foreign.ckpt"):
        choose_weights(cfg(tmp_path), SimpleNamespace(best_model_path=str(foreign), best_model_score=None), None, FP)


def test_without_a_best_checkpoint_the_final_weights(tmp_path: Path) -> None:
    task = SimpleNamespace(model=torch.nn.Linear(2, 1))
    weights, source, bleu = choose_weights(cfg(tmp_path), SimpleNamespace(best_model_path=""), task, FP)
    assert weights.keys() == {"weight", "bias"} and torch.equal(weights["weight"], task.model.weight)
    assert source == "final weights" and bleu is None


def test_a_checkpoint_of_another_configuration_is_never_exported(tmp_path: Path) -> None:
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {}, CKPT_KEY: {"fingerprint": "other"}}, path)
    with pytest.raises(InputError, match="another configuration"):
        check_own_checkpoint(path, "mine")
    check_own_checkpoint(path, "other")

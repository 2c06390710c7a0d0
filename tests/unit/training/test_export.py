"""s2s.training.export: only this run's checkpoints are exported, the weights chosen are the ones named, and
the model file, run.json and the run link say what was exported."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from s2s.common.io import InputError
from s2s.models.build import build_model, count_parameters
from s2s.models.model_file import load_model_file
from s2s.training.export import check_own_checkpoint, choose_weights, export
from s2s.training.resume import CKPT_KEY

from conftest import small_model_config
from helpers.train_outputs import EARLIER, publish_earlier, published

FP = "fp-of-this-run"
VOCAB = 20


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


def export_cfg(tmp_path: Path, model_cfg: dict) -> DictConfig:
    """A train stage's config as export reads it, every folder under ``tmp_path``."""
    (tmp_path / "prepared").mkdir()
    (tmp_path / "prepared" / "spm.model").write_bytes(b"the run's pieces (only hashed here)")
    paths = {name: str(tmp_path / name) for name in ("prepared", "models", "reports", "checkpoints")}
    return OmegaConf.create({
        "model": model_cfg,
        "train": {"average_last": 1},
        "logger": {"experiment_name": "exp", "log_model": False},
        "paths": {"prepared_dir": paths["prepared"], "model_dir": paths["models"], "reports_dir": paths["reports"],
                  "checkpoint_dir": paths["checkpoints"]},
    })  # fmt: skip


def test_export_writes_the_best_checkpoints_model_and_what_it_is(tmp_path: Path) -> None:
    cfg_model = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    cfg = export_cfg(tmp_path, cfg_model)
    torch.manual_seed(0)
    task = SimpleNamespace(model=build_model(cfg_model, VOCAB))  # the final weights: not the ones exported
    torch.manual_seed(1)
    best_state = build_model(cfg_model, VOCAB).state_dict()
    (tmp_path / "checkpoints").mkdir()
    best_path = tmp_path / "checkpoints" / "epoch=3.ckpt"
    lightning_state = {f"model.{k}": v for k, v in best_state.items()}  # the task's weights, as Lightning saves them
    torch.save({"state_dict": lightning_state, CKPT_KEY: {"fingerprint": FP}}, best_path)
    best = SimpleNamespace(best_model_path=str(best_path), best_model_score=torch.tensor(31.5))

    info = export(cfg, SimpleNamespace(global_step=7), best, VOCAB, task, None, FP, provenance={"cpu": "test"})

    model, payload = load_model_file(tmp_path / "models" / "model.pt", tmp_path / "prepared" / "spm.model")
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best_state.items())
    meta = {"source": "epoch=3.ckpt", "val_bleu": 31.5, "best_checkpoint_val_bleu": 31.5, "global_step": 7,
            "parameters": count_parameters(task.model)}  # fmt: skip
    assert payload["meta"] == meta
    assert json.loads((tmp_path / "models" / "run.json").read_text()) == meta  # cached: nothing of this machine
    link = json.loads((tmp_path / "reports" / "train_run.json").read_text())
    assert link == info == {"run_id": None, "tracking_uri": None, "experiment_name": "exp", **meta,
                            "provenance": {"cpu": "test"}}  # fmt: skip
    assert not (tmp_path / "checkpoints" / "config.yaml").exists()  # only for a tracked run


def test_export_of_a_tracked_run_links_it_and_logs_the_resolved_config(tmp_path: Path) -> None:
    cfg_model = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    cfg = export_cfg(tmp_path, cfg_model)
    (tmp_path / "checkpoints").mkdir()
    task = SimpleNamespace(model=build_model(cfg_model, VOCAB))
    logged: list = []
    logger = SimpleNamespace(run_id="run1", tracking_uri="sqlite:///mlflow.db", log_artifacts=logged.extend)
    info = export(cfg, SimpleNamespace(global_step=3), SimpleNamespace(best_model_path="", best_model_score=None),
                  VOCAB, task, logger, FP)  # fmt: skip
    assert info["run_id"] == "run1" and info["tracking_uri"] == "sqlite:///mlflow.db"
    assert info["source"] == "final weights" and info["val_bleu"] is None and "provenance" not in info
    assert json.loads((tmp_path / "reports" / "train_run.json").read_text()) == info
    resolved = tmp_path / "checkpoints" / "config.yaml"
    assert logged == [(resolved, None)]
    assert OmegaConf.load(resolved) == cfg


def test_export_of_another_runs_checkpoint_publishes_nothing(tmp_path: Path) -> None:
    cfg_model = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    cfg = export_cfg(tmp_path, cfg_model)
    (tmp_path / "checkpoints").mkdir()
    foreign = write_ckpt(tmp_path / "checkpoints" / "best.ckpt", 1.0, fingerprint="another")
    best = SimpleNamespace(best_model_path=str(foreign), best_model_score=torch.tensor(40.0))
    task = SimpleNamespace(model=build_model(cfg_model, VOCAB))
    with pytest.raises(InputError, match="another configuration"):
        export(cfg, SimpleNamespace(global_step=3), best, VOCAB, task, None, FP)
    assert not (tmp_path / "models").exists() and not (tmp_path / "reports").exists()


# issue 35, item 1: the weights are published with the vocabulary they were trained with, or not at all


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


@pytest.mark.parametrize("weights", ["best checkpoint", "final weights"])
def test_weights_trained_with_another_vocabulary_are_never_exported(tmp_path: Path, weights: str) -> None:
    cfg_model = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    cfg = export_cfg(tmp_path, cfg_model)  # spm.model on disk: "the run's pieces"
    (tmp_path / "checkpoints").mkdir()
    task = SimpleNamespace(model=build_model(cfg_model, VOCAB))
    old_vocab = _sha(b"the pieces the weights were trained with")
    best = SimpleNamespace(best_model_path="", best_model_score=None)
    if weights == "best checkpoint":
        path = tmp_path / "checkpoints" / "best.ckpt"
        state = {f"model.{k}": v for k, v in task.model.state_dict().items()}
        torch.save({"state_dict": state, CKPT_KEY: {"fingerprint": FP, "spm_sha256": old_vocab}}, path)
        best = SimpleNamespace(best_model_path=str(path), best_model_score=torch.tensor(1.0))
    with pytest.raises(InputError, match="another SentencePiece vocabulary"):
        export(cfg, SimpleNamespace(global_step=3), best, VOCAB, task, None, FP, spm_sha256=old_vocab)
    assert not (tmp_path / "models").exists()


def test_model_file_is_stamped_with_the_vocabulary_of_training(tmp_path: Path) -> None:
    cfg_model = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    cfg = export_cfg(tmp_path, cfg_model)
    (tmp_path / "checkpoints").mkdir()
    task = SimpleNamespace(model=build_model(cfg_model, VOCAB))
    trained = _sha(b"the run's pieces (only hashed here)")
    path = tmp_path / "checkpoints" / "best.ckpt"
    state = {f"model.{k}": v for k, v in task.model.state_dict().items()}
    torch.save({"state_dict": state, CKPT_KEY: {"fingerprint": FP, "spm_sha256": trained}}, path)
    best = SimpleNamespace(best_model_path=str(path), best_model_score=torch.tensor(1.0))
    export(cfg, SimpleNamespace(global_step=3), best, VOCAB, task, None, FP, spm_sha256=trained)
    payload = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert payload["spm_sha256"] == trained


# issue 35, item 11: what export publishes, it publishes whole, and only when everything is written


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _this_runs_curves(tmp_path: Path) -> Path:
    curves = tmp_path / "checkpoints" / "dvclive"
    (curves / "plots/metrics/val").mkdir(parents=True)
    (curves / "metrics.json").write_text('{"step": 3}\n')
    (curves / "plots/metrics/val/bleu.tsv").write_text("step\tbleu\n3\t0.5\n")
    return curves


def test_export_publishes_the_runs_curves_in_place_of_the_old_ones(tmp_path: Path) -> None:
    cfg_model = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    cfg = export_cfg(tmp_path, cfg_model)
    publish_earlier(tmp_path)
    (tmp_path / "models/notes.txt").write_text("a file of the user's in paths.model_dir\n")
    curves = _this_runs_curves(tmp_path)
    task = SimpleNamespace(model=build_model(cfg_model, VOCAB))
    export(cfg, SimpleNamespace(global_step=3), SimpleNamespace(best_model_path="", best_model_score=None),
           VOCAB, task, None, FP, curves=curves)  # fmt: skip
    assert tree(tmp_path / "reports/dvclive") == tree(curves), "the run's curves, and no other run's"
    models = tree(tmp_path / "models")
    assert sorted(models) == ["model.pt", "notes.txt", "run.json", "spm.model"], "model files replaced, rest kept"
    assert models["model.pt"] != EARLIER["models/model.pt"]
    assert json.loads((tmp_path / "reports/train_run.json").read_text())["global_step"] == 3
    assert tree(curves) == {"metrics.json": b'{"step": 3}\n', "plots/metrics/val/bleu.tsv": b"step\tbleu\n3\t0.5\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints", "models", "prepared", "reports"]
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["dvclive", "train_run.json"]


@pytest.mark.parametrize("fault", ["params.yaml changed", "logging failed"])
def test_an_export_that_fails_leaves_the_published_files_as_they_were(
    tmp_path: Path, monkeypatch, fault: str
) -> None:
    from s2s.common import config_guard

    cfg_model = small_model_config("bilstm_attn", emb=8, enc=8, dec=8)
    cfg = export_cfg(tmp_path, cfg_model)
    (tmp_path / "checkpoints").mkdir()
    before = publish_earlier(tmp_path)
    curves = _this_runs_curves(tmp_path)
    task = SimpleNamespace(model=build_model(cfg_model, VOCAB))
    logger = None
    if fault == "params.yaml changed":  # a second `dvc exp run` rewrote it while the model was written
        params = tmp_path / "params.yaml"
        params.write_text("optim: {lr: 0.005}\n")
        monkeypatch.setattr(config_guard, "_started_with", (params, "0" * 64))  # what it held at the start
        expected = pytest.raises(InputError, match="params.yaml changed while this stage ran")
    else:

        def fail(_):
            raise OSError("the tracking store went away")

        logger = SimpleNamespace(run_id="run1", tracking_uri="sqlite:///mlflow.db", log_artifacts=fail)
        expected = pytest.raises(OSError, match="went away")
    with expected:
        export(cfg, SimpleNamespace(global_step=3), SimpleNamespace(best_model_path="", best_model_score=None),
               VOCAB, task, logger, FP, curves=curves)  # fmt: skip
    assert published(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "reports").iterdir()) == ["dvclive", "train_run.json"], "no leftovers"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []

"""Export the trained model: ``model.pt`` (best or averaged weights), its ``spm.model``, ``run.json``,
the MLflow Model.

Every checkpoint exported is first checked to carry this run's fingerprint, so weights of another
configuration are never published under this run's config. ``run.json`` describes exactly what
was exported: averaged weights were never validated, so their ``val_bleu`` is null.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint

from s2s.common.io import InputError, sha256_file, write_json_atomic
from s2s.models.build import count_parameters
from s2s.models.model_file import save_model_file
from s2s.tracking import registry, runs
from s2s.training.checkpoint_files import average_state_dicts, lightning_model_state
from s2s.training.publish import staged_outputs
from s2s.training.resume import CKPT_KEY


def check_own_checkpoint(path: str | Path, fp: str, spm_sha256: str | None = None) -> None:
    """Refuse a checkpoint that another configuration wrote (e.g. a second run in the same folder),
    or that was trained with another vocabulary than ``spm_sha256`` (when given)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    stamp = ckpt.get(CKPT_KEY, {})
    own = stamp.get("fingerprint")
    if own != fp:
        raise InputError(
            f"{path} was written by another configuration (fingerprint {own}, this run {fp}); not exported"
        )
    _check_vocabulary(str(path), stamp.get("spm_sha256"), spm_sha256)


def _check_vocabulary(what: str, trained: str | None, expected: str | None) -> None:
    if trained is not None and expected is not None and trained != expected:
        raise InputError(
            f"{what} was trained with another SentencePiece vocabulary (sha256 {trained[:12]}...) than "
            f"the prepared spm.model (sha256 {expected[:12]}...): its ids mean other pieces; not exported"
        )


def choose_weights(
    cfg: DictConfig, best: ModelCheckpoint, task: pl.LightningModule, fp: str, spm_sha256: str | None = None
) -> tuple[dict[str, torch.Tensor], str, float | None]:
    """(weights, source, val_bleu of exactly those weights or None when they were never validated).
    Every checkpoint read must carry ``fp`` and (when given) the vocabulary ``spm_sha256``."""
    t = cfg.train
    if t.average_last > 1:
        epoch_ckpts = sorted(Path(cfg.paths.checkpoint_dir).glob("epoch*.ckpt"), key=os.path.getmtime)[
            -t.average_last :
        ]
        for p in epoch_ckpts:
            check_own_checkpoint(p, fp, spm_sha256)
        names = ", ".join(p.name for p in epoch_ckpts)
        return average_state_dicts(epoch_ckpts), f"average of {len(epoch_ckpts)}: {names}", None
    if best.best_model_path:
        check_own_checkpoint(best.best_model_path, fp, spm_sha256)
        score = float(best.best_model_score) if best.best_model_score is not None else None
        return lightning_model_state(best.best_model_path), Path(best.best_model_path).name, score
    return task.model.state_dict(), "final weights", None


def export(
    cfg: DictConfig,
    trainer: pl.Trainer,
    best: ModelCheckpoint,
    vocab_size: int,
    task: pl.LightningModule,
    logger: Any,
    fp: str,
    provenance: dict[str, Any] | None = None,
    spm_sha256: str | None = None,
    curves: Path | None = None,
) -> dict[str, Any]:
    """Write ``model.pt``, its ``spm.model`` and ``run.json`` (cached by DVC: nothing run-specific
    inside) and the link to the MLflow run in ``reports/train_run.json`` (not cached), and publish
    them with the run's DVCLive folder ``curves`` as ``reports/dvclive`` (None: left alone): all
    together once everything is written, none when anything fails (:mod:`s2s.training.publish`).

    ``spm_sha256``: the vocabulary the weights were trained with (the prepared ``spm.model``'s
    sha256 when training started; None: the file's now). ``model.pt`` is stamped with it, and
    nothing is exported when a checkpoint or the prepared ``spm.model`` says another one."""
    spm_model = Path(cfg.paths.prepared_dir) / "spm.model"
    current = sha256_file(spm_model)
    trained = spm_sha256 or current
    _check_vocabulary("the trained model", trained, current)
    state, source, val_bleu = choose_weights(cfg, best, task, fp, trained)
    wait_for_run = getattr(logger, "wait_for_run", None)
    if wait_for_run is not None and not wait_for_run(6 * logger.timeout_s):  # a busy store's last chance
        logger = None
    meta = {
        "source": source,
        "val_bleu": val_bleu,
        "best_checkpoint_val_bleu": float(best.best_model_score) if best.best_model_score is not None else None,
        "global_step": trainer.global_step,
        "parameters": count_parameters(task.model),
    }
    run_id = logger.run_id if logger else None
    uri = logger.tracking_uri if logger else None
    run_info = {"run_id": run_id, "tracking_uri": uri, "experiment_name": cfg.logger.get("experiment_name"), **meta}
    if provenance:  # the machine that trained: in the uncached link only (the model's bytes stay machine-free)
        run_info["provenance"] = provenance
    with staged_outputs(cfg.paths.model_dir, cfg.paths.reports_dir, curves) as out:
        model_file = out.model_dir / "model.pt"
        save_model_file(
            model_file,
            state,
            OmegaConf.to_container(cfg.model, resolve=True),
            vocab_size,
            spm_model,
            meta,
            spm_sha256=trained,
        )
        # the vocabulary beside the weights: models/ (the DVC artifact `translator`) is all translating needs
        shutil.copyfile(spm_model, out.model_dir / "spm.model")
        write_json_atomic(out.model_dir / "run.json", meta)  # cached with the model: no run id, path or time
        runs.write_run_link(out.run_link, run_info)
        if logger:
            resolved = Path(cfg.paths.checkpoint_dir) / "config.yaml"
            resolved.write_text(OmegaConf.to_yaml(cfg, resolve=True))
            logger.log_artifacts([(resolved, None)])
            if cfg.logger.get("log_model", True):
                import mlflow

                # a run opened late (a busy store) is not active yet: log_model would create another run
                late = mlflow.active_run() is None
                with runs.active_run(uri, run_id, False) if late else contextlib.nullcontext():
                    run_info.update(log_mlflow_model(cfg, model_file, val_bleu))
    return run_info


def log_mlflow_model(cfg: DictConfig, model_file: Path, val_bleu: float | None) -> dict[str, Any]:
    """The exported model as an MLflow Model in the run (``runs:/<id>/model``), registered under
    ``logger.registered_model_name``, ``logger.registered_model_alias`` moved to the best version
    validated on the same set (:func:`s2s.tracking.registry.validation_key`); the version
    described and tagged with its data, direction, preset, validation set and score."""
    translate_cfg = Path(__file__).resolve().parents[3] / "conf" / "translate.yaml"
    max_src_pieces = OmegaConf.load(translate_cfg).translate.max_src_pieces if translate_cfg.is_file() else None
    reverse = cfg.preprocess.get("reverse", False)
    valid = Path(cfg.paths.prepared_dir) / "valid.tsv"
    key = tags = description = None
    if valid.is_file():
        key = registry.validation_key(valid, validation_scoring(cfg))
        tags, description = version_description(cfg, valid, key, val_bleu)
    return registry.log_translator(
        model_file,
        Path(cfg.paths.prepared_dir) / "spm.model",
        OmegaConf.to_container(cfg.decode, resolve=True),
        cfg.data.tgt_lang if reverse else None,
        max_src_pieces,
        cfg.logger.get("registered_model_name"),
        cfg.logger.get("registered_model_alias"),
        val_bleu,
        numerics=OmegaConf.to_container(cfg.numerics, resolve=True) if "numerics" in cfg else None,
        validation=key,
        tags=tags,
        description=description,
    )


def validation_scoring(cfg: DictConfig) -> dict[str, Any]:
    """How validation scores, besides its sentences: the part validated and the output limits."""
    return {
        "limit_val_batches": cfg.trainer.get("limit_val_batches", 1.0),
        "val_max_len_a": cfg.train.val_max_len_a,
        "val_max_len_b": cfg.train.val_max_len_b,
    }


def preset_name() -> str:
    """The preset this run was composed with (Hydra's choice), ``unknown`` outside Hydra."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return str(HydraConfig.get().runtime.choices.get("preset", "unknown"))
    except Exception:  # not under @hydra.main (a test calling export directly)
        return "unknown"


def version_description(
    cfg: DictConfig, valid: Path, key: str, val_bleu: float | None
) -> tuple[dict[str, str], str]:
    """A registered version's tags and description: what it translates, on what data, how it scored."""
    with open(valid, encoding="utf-8") as fh:
        sentences = max(sum(1 for _ in fh) - 1, 0)  # a header line
    src, tgt = cfg.data.src_lang, cfg.data.tgt_lang
    direction = f"{src}<->{tgt}" if cfg.preprocess.get("reverse", False) else f"{src}->{tgt}"
    preset = preset_name()
    score = registry.console_score(val_bleu) if val_bleu is not None else "none (not validated)"
    tags = {
        "data": str(cfg.data.name),
        "direction": direction,
        "preset": preset,
        "model": str(cfg.model.name),
        "validation_sentences": str(sentences),
        "validation_digest": sha256_file(valid)[:16],
        registry.VALIDATION_KEY_TAG: key,
    }
    description = (
        f"{cfg.model.name} translating {direction} ({cfg.data.name}, preset {preset}); validation BLEU "
        f"{score} on {sentences} sentences (valid.tsv sha256 {tags['validation_digest']}, greedy)"
    )
    return tags, description

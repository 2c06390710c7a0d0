"""The train stage's core: build data, task, callbacks and trainer; resume; export the model."""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2s import dvc_report, tracking
from s2s.build import count_parameters
from s2s.checkpoint import average_state_dicts, lightning_model_state, save_model_file
from s2s.data.datamodule import TranslationDataModule
from s2s.io import InputError, atomic_path, write_json_atomic
from s2s.task import TranslationTask

log = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"


def plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def fingerprint(cfg: DictConfig) -> str:
    """Hash of everything that determines the training result (not logging or device count)."""
    keys = ("seed", "data", "preprocess", "model", "optim", "train", "preset")
    relevant = {k: plain(cfg[k]) for k in keys if k in cfg}
    relevant["max_epochs"] = cfg.trainer.get("max_epochs")
    relevant["max_steps"] = cfg.trainer.get("max_steps")
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_launcher_process() -> bool:
    """True in the process the user started (not a DDP child Lightning spawned)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def resolve_resume(ckpt_dir: Path, fp: str, resume: str) -> str | None:
    """Where to resume from: an explicit path, or ``last.ckpt`` of an unfinished run with the same config.

    Checkpoints of a finished run or of another configuration are removed, so a stale
    optimiser state never leaks into a new run.
    """
    if resume not in ("auto", "never"):
        if not Path(resume).is_file():
            raise InputError(f"train.resume={resume}: checkpoint not found")
        return resume
    last = ckpt_dir / "last.ckpt"
    stamp = ckpt_dir / "fingerprint"
    if (
        resume == "auto"
        and last.is_file()
        and stamp.is_file()
        and stamp.read_text().strip() == fp
        and not (ckpt_dir / COMPLETE_MARKER).exists()
    ):
        return str(last)
    if is_launcher_process():
        if ckpt_dir.exists():
            log.info("starting fresh: removing checkpoints of a finished or different run in %s", ckpt_dir)
            shutil.rmtree(ckpt_dir)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(fp + "\n")
    return None


class LearningCurves(Callback):
    """Writes train and validation curves as CSV files that ``dvc plots`` renders (rank 0 only)."""

    def __init__(self, out_dir: str | Path, every_n_steps: int = 50):
        self.out_dir, self.every = Path(out_dir), every_n_steps
        self.train_rows: list[tuple[int, float]] = []
        self.valid_rows: list[tuple[int, float, float]] = []

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if trainer.global_step % self.every == 0 and "train_loss_step" in trainer.callback_metrics:
            self.train_rows.append((trainer.global_step, float(trainer.callback_metrics["train_loss_step"])))

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        m = trainer.callback_metrics
        self.valid_rows.append((trainer.global_step, float(m["val_loss"]), float(m["val_bleu"])))
        self.write()

    def write(self) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        for name, header, rows in (
            ("train.csv", ("step", "train_loss"), self.train_rows),
            ("valid.csv", ("step", "val_loss", "val_bleu"), self.valid_rows),
        ):
            with atomic_path(self.out_dir / name) as tmp, open(tmp, "w", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(header)
                writer.writerows(rows)

    def state_dict(self) -> dict[str, Any]:
        return {"train_rows": self.train_rows, "valid_rows": self.valid_rows}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.train_rows = [tuple(r) for r in state.get("train_rows", [])]
        self.valid_rows = [tuple(r) for r in state.get("valid_rows", [])]


class SaveOnSignal(Callback):
    """On SIGTERM (or SIGUSR1, as a preempted SLURM job gets) save ``last.ckpt``, then exit.

    Lightning turns the signal into ``SIGTERMException`` at a safe point between batches; the
    checkpoint written here lets the next run of the same command resume exactly there.
    """

    def __init__(self, ckpt_dir: Path):
        self.path = ckpt_dir / "last.ckpt"

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if threading.current_thread() is threading.main_thread():
            # SIGUSR1 outside SLURM: treat it like SIGTERM (Lightning handles it only under SLURM)
            connector = trainer._signal_connector
            signal.signal(signal.SIGUSR1, lambda signum, frame: setattr(connector, "received_sigterm", True))

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        if isinstance(exception, SIGTERMException):
            trainer.save_checkpoint(self.path)
            log.warning("interrupted by a signal at step %d: saved %s; rerun to resume", trainer.global_step, self.path)


def make_logger(cfg: DictConfig, run_id: str | None, tags: dict[str, str]) -> Any:
    return tracking.make_logger(cfg, run_id, tags) or False


def run_training(cfg: DictConfig) -> dict[str, Any]:
    """Train, export ``model.pt`` and ``run.json`` into ``paths.model_dir``; returns a summary."""
    paths = cfg.paths
    ckpt_dir = Path(paths.checkpoint_dir)
    if cfg.logger.get("name", "mlflow") == "mlflow":
        tracking.check_tracking_uri(
            tracking.tracking_uri(cfg.logger.get("tracking_uri")), cfg.logger.get("timeout_s", 10)
        )
    pl.seed_everything(cfg.seed, workers=True)
    t = cfg.train
    datamodule = TranslationDataModule(
        paths.prepared_dir,
        t.batch.max_tokens,
        t.batch.max_sentences,
        t.batch.eval_max_sentences,
        cfg.seed,
        t.num_workers,
    )
    task = TranslationTask(
        model=plain(cfg.model),
        optim=plain(cfg.optim),
        vocab_size=len(datamodule.vocab),
        label_smoothing=t.label_smoothing,
        val_max_len_a=t.val_max_len_a,
        val_max_len_b=t.val_max_len_b,
    )
    if t.get("init_from"):
        # start fresh from these weights: new optimiser, schedule and step counter
        from s2s.checkpoint import check_state_dict

        state = (
            lightning_model_state(t.init_from)
            if str(t.init_from).endswith(".ckpt")
            else torch.load(t.init_from, map_location="cpu", weights_only=True)["state_dict"]
        )
        check_state_dict(task.model, state, str(t.init_from))
        task.model.load_state_dict(state)

    validate_only = bool(t.get("validate_only"))
    if validate_only and not t.get("init_from"):
        raise InputError("train.validate_only=true needs train.init_from=<model.pt or .ckpt> (the weights to validate)")
    fp = fingerprint(cfg)
    resume_path = None if validate_only else resolve_resume(ckpt_dir, fp, str(t.resume))
    run_id = None
    run_file = ckpt_dir / "run.json"
    if resume_path and run_file.is_file():
        run_id = json.loads(run_file.read_text()).get("run_id")
    tags = tracking.lineage_tags(paths.prepared_dir, cfg.data.name, cfg.model.name)
    logger = False if validate_only else make_logger(cfg, run_id, tags)

    # last.ckpt is refreshed every N steps and after every validation; both callbacks write the same file
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val_bleu",
        mode="max",
        save_top_k=1,
        save_last=True,
        enable_version_counter=False,
    )
    periodic = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step}",
        every_n_train_steps=t.save_every_n_steps,
        save_top_k=0,
        save_last=True,
        enable_version_counter=False,
    )
    curves = LearningCurves(Path(paths.reports_dir) / "curves")
    callbacks: list[Callback] = [best, periodic, curves, SaveOnSignal(ckpt_dir), dvc_report.TrainingSummary()]
    live = dvc_report.make_logger(Path(paths.reports_dir) / "dvclive", resume=bool(resume_path))
    if t.average_last > 1:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="epoch{epoch}",
                monitor="step",
                mode="max",
                save_top_k=t.average_last,
                every_n_epochs=1,
            )
        )
    if t.early_stopping_patience:
        callbacks.append(
            EarlyStopping(monitor="val_bleu", mode="max", patience=t.early_stopping_patience, strict=False)
        )
    trainer = pl.Trainer(
        **plain(cfg.trainer),
        callbacks=[] if validate_only else callbacks,
        enable_checkpointing=not validate_only,
        logger=False if validate_only else [x for x in (logger, live) if x],
        use_distributed_sampler=False,
        default_root_dir=str(ckpt_dir),
        enable_model_summary=False,
    )
    if trainer.is_global_zero and logger:
        write_json_atomic(run_file, {"run_id": logger.run_id, "tracking_uri": logger.tracking_uri})
        logger.log_hyperparams(tracking.run_params(plain(cfg)))
        logger.log_hyperparams({"parameters": count_parameters(task.model)})
    if validate_only:
        # decode the validation set with the given weights (train.init_from) on any number of ranks
        trainer.validate(task, datamodule=datamodule)
        result = getattr(task, "last_validation", None)
        if trainer.is_global_zero and result is not None:
            result = {**result, "hypotheses": datamodule.vocab.decode(result["hypotheses"])}
            write_json_atomic(Path(paths.reports_dir) / "validation.json", result)
        return result or {}
    trainer.fit(task, datamodule=datamodule, ckpt_path=resume_path)
    summary: dict[str, Any] = {}
    if trainer.is_global_zero:
        summary = export(cfg, trainer, best, datamodule, task, logger)
        (ckpt_dir / COMPLETE_MARKER).write_text("done\n")
    return summary


def export(
    cfg: DictConfig,
    trainer: pl.Trainer,
    best: ModelCheckpoint,
    datamodule: TranslationDataModule,
    task: TranslationTask,
    logger: Any,
) -> dict[str, Any]:
    model_dir = Path(cfg.paths.model_dir)
    t = cfg.train
    if t.average_last > 1:
        epoch_ckpts = sorted(Path(cfg.paths.checkpoint_dir).glob("epoch*.ckpt"), key=os.path.getmtime)[
            -t.average_last :
        ]
        state, source = average_state_dicts(epoch_ckpts), f"average of {len(epoch_ckpts)}"
    elif best.best_model_path:
        state, source = lightning_model_state(best.best_model_path), Path(best.best_model_path).name
    else:
        state, source = task.model.state_dict(), "final weights"
    best_bleu = float(best.best_model_score) if best.best_model_score is not None else None
    run_id = logger.run_id if logger else None
    meta = {
        "source": source,
        "val_bleu": best_bleu,
        "global_step": trainer.global_step,
        "parameters": count_parameters(task.model),
    }
    save_model_file(
        model_dir / "model.pt",
        state,
        plain(cfg.model),
        len(datamodule.vocab),
        Path(cfg.paths.prepared_dir) / "spm.model",
        meta,
    )
    run_info = {
        "run_id": run_id,
        "tracking_uri": logger.tracking_uri if logger else None,
        "experiment_name": cfg.logger.get("experiment_name"),
        **meta,
    }
    write_json_atomic(model_dir / "run.json", meta)  # cached with the model: no run id, path or time
    tracking.write_run_link(Path(cfg.paths.reports_dir) / "train_run.json", run_info)
    if logger:
        resolved = Path(cfg.paths.checkpoint_dir) / "config.yaml"
        resolved.write_text(OmegaConf.to_yaml(cfg, resolve=True))
        artifacts = [
            (resolved, None),
            (Path(cfg.paths.prepared_dir) / "spm.model", None),
            (Path(cfg.paths.reports_dir) / "curves", "curves"),
        ]
        if cfg.logger.get("log_checkpoint", True):
            artifacts.append((model_dir / "model.pt", None))
        logger.log_artifacts(artifacts)
    return run_info

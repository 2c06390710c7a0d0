"""The train stage's core: assemble data, task, callbacks and trainer; decide resume; train; export.

Each concern lives in its own module: the resume policy in :mod:`s2s.training.resume`, the folder lock in
:mod:`s2s.training.run_lock`, callbacks in :mod:`s2s.training.checkpoints`, :mod:`s2s.training.signals` and
:mod:`s2s.training.console`, export in :mod:`s2s.training.export`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
import warnings
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint, ModelSummary
from pytorch_lightning.utilities.exceptions import SIGTERMException

from s2s.common import numerics
from s2s.common.config_dict import plain
from s2s.common.config_guard import check_params_file
from s2s.common.io import InputError, sha256_file, write_json_atomic
from s2s.data.datamodule import TranslationDataModule
from s2s.inference.compilation import compile_decoder_step
from s2s.models.build import count_parameters
from s2s.models.model_file import check_state_dict
from s2s.tracking import dvclive as dvc_report
from s2s.tracking import lineage, mlflow_logger, runs, store
from s2s.training import publish, resume
from s2s.training.checkpoint_files import load_init_weights
from s2s.training.checkpoints import LastCheckpoint, MovedFolder, StampCheckpoints, StepBoundaryCheckpoint
from s2s.training.console import EpochReport, ParameterSummary
from s2s.training.export import export
from s2s.training.lightning_checkpoint_io import AtomicCheckpointIO
from s2s.training.run_lock import CheckpointLock
from s2s.training.signals import SaveOnSignal, TrainingInterrupted
from s2s.training.task import TranslationTask

log = logging.getLogger(__name__)
# Lightning 2.6's own pytree helper calls an API torch 2.13 deprecated: nothing a user can act on
warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
# the folder always holds the stage's own stamp and lock, and the resume policy (s2s.training.resume)
# decides, and says, what becomes of checkpoints found there: Lightning's warning is no news
warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty\.$")


class _NoCloudTips(logging.Filter):
    """Drops Lightning's advertisements (``💡 Tip: For seamless cloud logging ...``, ``... cloud
    uploads ...``): this project tracks with MLflow and DVC."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("💡 Tip: For seamless cloud")


logging.getLogger("pytorch_lightning.utilities.rank_zero").addFilter(_NoCloudTips())


def trainer_kwargs(cfg: DictConfig, callbacks: list[Callback], plugins: list[Any], **defaults: Any) -> dict[str, Any]:
    """``pytorch_lightning.Trainer``'s arguments: the stage's ``defaults``, then every ``trainer.*`` key.

    A user's key always wins (``+trainer.use_distributed_sampler=true`` reaches the Trainer, it
    never collides with a keyword of ours); Hydra ``_target_`` entries are instantiated, and the
    user's callbacks and plugins are added to the stage's own, which training needs.
    ``trainer.enable_progress_bar: null`` means Lightning's bar when stderr is a terminal (else
    the one line per epoch of :class:`s2s.training.console.EpochReport` is the console output).
    """
    from hydra.utils import instantiate

    user = instantiate(plain(cfg.trainer), _convert_="all")
    kwargs = {
        "logger": False,  # the stage adds its own loggers (MLflow, DVCLive) once the run is known
        "use_distributed_sampler": False,  # the token-batch sampler shards the data itself
        **defaults,
        **user,
        "callbacks": [*callbacks, *_as_list(user.get("callbacks"))],
        "plugins": [*plugins, *_as_list(user.get("plugins"))],
    }
    if kwargs.get("enable_progress_bar") is None:
        kwargs["enable_progress_bar"] = sys.stderr.isatty()
    if kwargs.get("enable_model_summary", True) and not any(isinstance(c, ModelSummary) for c in kwargs["callbacks"]):
        # the summary without Lightning's "Total FLOPs: 0"; Lightning then adds none of its own (and
        # says nothing about it); a user's own summary callback is left as it is
        kwargs["callbacks"].append(ParameterSummary())
        kwargs["enable_model_summary"] = False
    return kwargs


def _as_list(value: Any) -> list[Any]:
    return [] if value is None else list(value) if isinstance(value, list | tuple) else [value]


def make_logger(cfg: DictConfig, run_id: str | None, tags: dict[str, str], name: str | None = None) -> Any:
    """Lightning's MLflow logger (rank-zero only), continuing ``run_id`` when resuming."""
    return mlflow_logger.make_logger(cfg, run_id, tags, name) or False


def make_callbacks(cfg: DictConfig, ckpt_dir: Path, fp: str, spm_sha: str) -> tuple[ModelCheckpoint, list[Callback]]:
    t = cfg.train
    # last.ckpt is refreshed every N steps (periodic) and after every validation (LastCheckpoint)
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best",
        monitor="val_bleu",
        mode="max",
        save_top_k=1,
        enable_version_counter=False,
        save_on_train_epoch_end=False,
    )
    periodic = StepBoundaryCheckpoint(
        dirpath=ckpt_dir,
        filename="step{step}",
        every_n_train_steps=t.save_every_n_steps,
        save_top_k=0,
        save_last=True,
        enable_version_counter=False,
    )
    callbacks: list[Callback] = [
        best,
        LastCheckpoint(ckpt_dir),  # after best: its save holds the updated best score
        periodic,
        SaveOnSignal(ckpt_dir),
        StampCheckpoints(fp, spm_sha),
        MovedFolder(),  # a copied or moved project restores its best score and paths
        EpochReport(),
        dvc_report.TrainingSummary(),
    ]
    if t.average_last > 1:
        callbacks.append(
            ModelCheckpoint(
                dirpath=ckpt_dir,
                filename="epoch={epoch}",
                auto_insert_metric_name=False,  # else Lightning names it "epochepoch=8.ckpt"
                monitor="step",
                mode="max",
                save_top_k=t.average_last,
                every_n_epochs=1,
                save_on_train_epoch_end=False,  # as LastCheckpoint: a resume from an epoch's end is exact
            )
        )
    if t.early_stopping_patience:
        callbacks.append(
            EarlyStopping(
                monitor="val_bleu",
                mode="max",
                patience=t.early_stopping_patience,
                strict=False,
                # at the validation's end, before its checkpoints: they hold the updated patience
                check_on_train_epoch_end=False,
            )
        )
    return best, callbacks


def build_task(cfg: DictConfig) -> tuple[TranslationTask, TranslationDataModule]:
    """The data and the LightningModule, starting from ``train.init_from`` weights if given."""
    pl.seed_everything(cfg.seed, workers=True)
    t = cfg.train
    datamodule = TranslationDataModule(
        cfg.paths.prepared_dir,
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
        state = load_init_weights(t.init_from, Path(cfg.paths.prepared_dir) / "spm.model")
        check_state_dict(task.model, state, f"train.init_from={t.init_from}")
        task.model.load_state_dict(state)
    compile_decoder_step(task.model, t.get("compile", False), "train.compile")
    return task, datamodule


def run_training(cfg: DictConfig, run: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train, export ``model.pt`` and ``run.json`` into ``paths.model_dir``; returns a summary.
    ``run``: the MLflow run's ``name`` and extra ``tags`` (a sweep job's: parent run, overrides)."""
    ckpt_dir = Path(cfg.paths.checkpoint_dir)
    if cfg.logger.get("name", "mlflow") == "mlflow":
        # an unreachable server or a corrupt, unwritable or locked SQLite store: one line, before any work
        store.check_store(store.tracking_uri(cfg.logger.get("tracking_uri")), cfg.logger.get("timeout_s", 10))
    if cfg.train.get("validate_only"):
        return validate_only(cfg)
    spm_model = Path(cfg.paths.prepared_dir) / "spm.model"
    if not spm_model.is_file():
        raise InputError(f"{spm_model}: not found (run the preprocess stage first)")
    # the config and the prepared data's digests, once: the vocabulary trained with is this one
    relevant = resume.relevant_config(cfg)
    fp, spm_sha = resume.fingerprint(relevant), resume.trained_vocabulary(relevant) or sha256_file(spm_model)
    best, callbacks = make_callbacks(cfg, ckpt_dir, fp, spm_sha)
    checkpoint_io = AtomicCheckpointIO(after_save=lambda _: resume.discard_previous(ckpt_dir))
    trainer = pl.Trainer(**trainer_kwargs(cfg, callbacks, [checkpoint_io], default_root_dir=str(ckpt_dir)))
    # the Trainer knows the global rank and world size from Lightning's cluster environment
    # (SLURM, torchelastic, its own launcher), before any process group exists
    world_size = trainer.num_nodes * trainer.num_devices
    # one training per folder, checked first; the lock lives as long as this object
    lock = CheckpointLock(ckpt_dir).acquire() if trainer.is_global_zero else None
    try:
        if lock is not None:
            resume.recover_previous(ckpt_dir)  # what a killed run left set aside
        task, datamodule = build_task(cfg)
        try:
            return _fit_and_export(
                cfg, trainer, task, datamodule, best, fp, relevant, world_size, run or {}, spm_sha
            )
        except BaseException:
            # failed before its first checkpoint (missing data, NaN, tracking store, full disk):
            # the finished run it was to replace is put back
            if lock is not None:
                resume.restore_previous(ckpt_dir)
            raise
    finally:
        if lock is not None:
            lock.release()


def _fit_and_export(
    cfg: DictConfig,
    trainer: pl.Trainer,
    task: TranslationTask,
    datamodule: TranslationDataModule,
    best: ModelCheckpoint,
    fp: str,
    relevant: dict[str, Any],
    world_size: int,
    run: dict[str, Any],
    spm_sha: str,
) -> dict[str, Any]:
    paths, t = cfg.paths, cfg.train
    ckpt_dir = Path(paths.checkpoint_dir)
    decision = resume.decide(ckpt_dir, fp, relevant, world_size, str(t.resume))
    resume.prepare_checkpoint_dir(ckpt_dir, decision, fp, relevant, world_size, trainer.is_global_zero)
    if decision.resume_path and trainer.is_global_zero:
        log.info("resuming from %s: %s", decision.resume_path, decision.reason)

    run_file = ckpt_dir / "run.json"
    run_id = None
    if decision.resume_path and run_file.is_file():
        run_id = json.loads(run_file.read_text()).get("run_id")
    prov = numerics.stage_provenance(cfg, "train", device=trainer.strategy.root_device)  # what runs, not "auto"
    tags = {
        **lineage.lineage_tags(paths.prepared_dir, cfg.data.name, cfg.model.name),
        **numerics.provenance_tags(prov),
        **run.get("tags", {}),
    }
    # rank 0 alone opens the MLflow run (another rank would create a run of its own)
    logger = make_logger(cfg, run_id, tags, run.get("name")) if trainer.is_global_zero else False
    # the curves go to the run's own folder, published as reports/dvclive with the model (s2s.training.publish)
    curves = publish.curves_dir(ckpt_dir)
    live = dvc_report.make_logger(curves, resume=bool(decision.resume_path))
    if trainer.is_global_zero:
        live.log_hyperparams({"provenance": prov})
    trainer.loggers = [*trainer.loggers, *(x for x in (logger, live) if x)]  # a user's trainer.logger stays
    active = contextlib.nullcontext()
    if trainer.is_global_zero and logger:
        # now, or when a busy store answers (the run is then opened late, not given up)
        logger.when_open(lambda run_id: write_json_atomic(run_file, {"run_id": run_id}))
        # the composed config once, flattened with dots (the task's own hparams are not logged)
        logger.log_hyperparams({**runs.run_params(plain(cfg)), "parameters": count_parameters(task.model)})
        # system metrics and dataset inputs: now, or once a busy store opens the run
        datasets = lambda: runs.log_datasets(paths.prepared_dir, cfg.data.name)  # noqa: E731
        active = runs.active_run_when_open(logger, cfg.logger.get("log_system_metrics"), datasets)
    with active:
        try:
            trainer.fit(task, datamodule=datamodule, ckpt_path=decision.resume_path)
        except SIGTERMException as err:  # Lightning's own stop during validation; saved in on_exception
            raise TrainingInterrupted(signal.SIGTERM) from err
        check_params_file()  # trained with what params.yaml said at the start, or nothing is exported
        summary: dict[str, Any] = {}
        if trainer.is_global_zero:
            summary = export(
                cfg, trainer, best, len(datamodule.vocab), task, logger or None, fp, prov, spm_sha, curves
            )
            (ckpt_dir / resume.COMPLETE_MARKER).write_text("done\n")
    return summary


def validate_only(cfg: DictConfig) -> dict[str, Any]:
    """Decode the validation set with the given weights (train.init_from) on any number of ranks."""
    if not cfg.train.get("init_from"):
        raise InputError("train.validate_only=true needs train.init_from=<model.pt or .ckpt> (the weights to validate)")
    task, datamodule = build_task(cfg)
    trainer = pl.Trainer(
        **trainer_kwargs(
            cfg, [], [], enable_checkpointing=False, default_root_dir=str(cfg.paths.checkpoint_dir)
        )
    )
    trainer.validate(task, datamodule=datamodule)
    result = getattr(task, "last_validation", None)
    if trainer.is_global_zero and result is not None:
        result = {**result, "hypotheses": datamodule.vocab.decode(result["hypotheses"])}
        write_json_atomic(Path(cfg.paths.reports_dir) / "validation.json", result)
    return result or {}

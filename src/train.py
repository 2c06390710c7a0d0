"""DVC stage `train` (also a plain Hydra app): python src/train.py model=bigru_attn trainer.devices=2

Exit codes: 0 trained and exported; 2 a user error (one line `error: ...`); 128 + signal number
(143 SIGTERM, 138 SIGUSR1, 130 SIGINT / Ctrl-C) when a signal stopped training after saving a
resumable last.ckpt (a Ctrl-C outside the training loop also exits 130, keeping the checkpoints).
"""

# isort: off
import s2s.common.interrupts  # noqa: F401 - first: Ctrl-C while importing the rest ends in one line
# isort: on
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from s2s.common.cli import stage_main, user_errors
from s2s.common.config_guard import record_params_file
from s2s.common.io import check_writable_dir
from s2s.common.numerics import apply_from_config
from s2s.common.options import validate
from s2s.training.run_lock import refuse_if_held

log = logging.getLogger("train")
# overrides that never name a sweep job: where its files go
NOT_SWEPT = ("paths.", "hydra.")


def single_job_argv(argv0: str, task_overrides: list[str], job_paths: dict[str, str]) -> list[str]:
    """The command line of one sweep job, for the DDP processes Lightning starts.

    Lightning relaunches its DDP children with ``sys.argv`` (plus ``hydra.run.dir``): under
    ``-m`` each child would run the whole sweep. The job's own overrides and output paths make
    every child run exactly this job.
    """
    keep = [o for o in task_overrides if o.split("=", 1)[0].lstrip("+~") not in {f"paths.{k}" for k in job_paths}]
    return [argv0, *keep, *(f"paths.{k}={v}" for k, v in job_paths.items())]


def end_distributed_job(launch_env: dict[str, str]) -> None:
    """Between sweep jobs: close this job's process group and restore the environment.

    Lightning keeps the initialised process group and sets ``LOCAL_RANK``, ``MASTER_PORT``... in
    the launching process; the next job would take itself for a child, start no DDP processes and
    wait for them forever (or reuse the group whose other ranks have exited).
    """
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    os.environ.clear()
    os.environ.update(launch_env)


def launched_overrides(hc: Any) -> list[str]:
    """Every override of the sweep's command line (``preset=tiny optim.lr=0.001,0.003``), as Hydra's
    sweeper wrote them to ``multirun.yaml`` before the first job; [] without the file."""
    try:
        return list(OmegaConf.load(Path(hc.sweep.dir) / "multirun.yaml").hydra.overrides.task)
    except (OSError, AttributeError):
        return []


def swept(hc: Any) -> tuple[list[str], list[str]]:
    """(the sweep's own overrides that vary, e.g. ``optim.lr=0.001,0.003``; this job's values of
    them, e.g. ``optim.lr=0.001``). The sweep's are in ``multirun.yaml`` (Hydra's sweeper writes it
    before the first job); without it every override of the job counts as swept."""
    parser = OverridesParser.create()
    job = [o for o in parser.parse_overrides(list(hc.overrides.task)) if not o.key_or_group.startswith(NOT_SWEPT)]
    launched = launched_overrides(hc)
    sweep = [o for o in parser.parse_overrides(launched) if o.is_sweep_override()] if launched else job
    keys = {o.key_or_group for o in sweep}
    return [o.input_line for o in sweep], [o.input_line for o in job if o.key_or_group in keys]


def sweep_run(cfg: DictConfig, hc: Any) -> dict[str, Any]:
    """The MLflow name and tags of a sweep job's run, under the sweep's parent run (created once).

    Named by what varies (``bilstm_attn lr=0.001``; the full key where the last part is ambiguous)
    and tagged with the job's folder and every override of the job (``hydra.overrides``, a shell
    command line: ``python src/train.py <tag>`` trains the job again, the preset included; the
    parent's holds the sweep's), so the jobs of a sweep can be told apart and rerun.
    """
    from s2s.tracking import runs, store, sweeps

    if cfg.logger.get("name", "mlflow") != "mlflow":
        return {}
    sweep_overrides, job_overrides = swept(hc)
    short = [o.split("=", 1)[0].rsplit(".", 1)[-1] for o in job_overrides]
    labels = [
        (s if short.count(s) == 1 else o.split("=", 1)[0]) + "=" + o.split("=", 1)[1]
        for s, o in zip(short, job_overrides)
        if o.split("=", 1)[0] != "model"  # the model's name starts the run name anyway
    ]
    model = runs.run_name(cfg.logger.get("run_name") or cfg.model.name)
    uri = store.tracking_uri(cfg.logger.get("tracking_uri"))
    parent = sweeps.sweep_parent_run(
        uri,
        cfg.logger.experiment_name,
        hc.sweep.dir,
        " ".join(["sweep", *sweep_overrides]),
        {"hydra.sweep.dir": str(Path(hc.sweep.dir).resolve()), "hydra.overrides": shlex.join(launched_overrides(hc))},
    )
    return {
        "name": " ".join([model, *labels]) if labels else f"{model} job {hc.job.num}",
        "tags": {
            "mlflow.parentRunId": parent,
            "hydra.overrides": shlex.join(hc.overrides.task),  # all of them: the job's values of the swept ones
            "hydra.job.num": str(hc.job.num),
            "hydra.job.dir": str(Path(hc.runtime.output_dir).resolve()),
            "hydra.sweep.dir": str(Path(hc.sweep.dir).resolve()),
        },
        "parent": (uri, parent),
    }


def run_sweep_job(cfg: DictConfig, hc: Any) -> dict[str, Any]:
    """One job of a ``-m`` sweep: its own output folders, its own MLflow run under the sweep's,
    and DDP children that run only this job."""
    out = hc.runtime.output_dir
    job_paths = {"checkpoint_dir": f"{out}/checkpoints", "model_dir": f"{out}/models", "reports_dir": f"{out}/reports"}
    with open_dict(cfg):
        for key, value in job_paths.items():
            cfg.paths[key] = value
    run = sweep_run(cfg, hc)
    sys.argv = single_job_argv(sys.argv[0], list(hc.overrides.task), job_paths)
    launch_env = dict(os.environ)
    from s2s.tracking.runs import end_status

    status = "FINISHED"
    try:
        from s2s.training.run import run_training

        return run_training(cfg, run)
    except BaseException as err:
        status = end_status(err)  # KILLED when a signal stopped the job
        raise
    finally:
        end_distributed_job(launch_env)
        if run:
            from s2s.tracking import sweeps

            sweeps.end_sweep_job(*run["parent"], status)


def check_outputs(cfg: DictConfig) -> None:
    """Before the work: every output folder writable, and no other training holding the checkpoints."""
    for key in ("checkpoint_dir", "model_dir", "reports_dir"):
        check_writable_dir(cfg.paths[key], f"paths.{key}")
    if not cfg.train.get("validate_only"):
        single = str(cfg.trainer.get("devices", 1)) == "1" and int(cfg.trainer.get("num_nodes", 1)) == 1
        refuse_if_held(cfg.paths.checkpoint_dir, single)


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    record_params_file()  # checked again before the model is exported
    validate(cfg, "train")
    apply_from_config(cfg)  # before the first tensor operation: it decides which kernels run
    hc = HydraConfig.get()
    if hc.mode != RunMode.MULTIRUN:  # a sweep job's output folders are set in run_sweep_job
        check_outputs(cfg)
    # imported once the options are checked: Lightning takes seconds to import, a bad option answers at once
    from s2s.training.run import run_training

    try:
        summary = run_sweep_job(cfg, hc) if hc.mode == RunMode.MULTIRUN else run_training(cfg)
    except KeyboardInterrupt:
        # Ctrl-C outside the training loop (loading data, exporting): what was saved stays resumable
        print("interrupted by SIGINT; rerun the same command to resume", file=sys.stderr, flush=True)
        sys.exit(128 + 2)
    if summary:
        bleu = summary.get("val_bleu")
        log.info(
            "model written to %s/model.pt (val BLEU %s, MLflow run %s)",
            cfg.paths.model_dir,
            "?" if bleu is None else f"{float(bleu):.2f}",
            summary.get("run_id"),
        )


if __name__ == "__main__":
    stage_main(main)

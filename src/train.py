"""DVC stage `train` (also a plain Hydra app): python src/train.py model=bigru_attn trainer.devices=2

Exit codes: 0 trained and exported; 2 a user error (one line `error: ...`); 128 + signal number
(143 SIGTERM, 138 SIGUSR1, 130 SIGINT / Ctrl-C) when a signal stopped training after saving a
resumable last.ckpt (a Ctrl-C outside the training loop also exits 130, keeping the checkpoints).
"""

import logging
import os
import sys
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from s2s.cli import stage_main, user_errors
from s2s.io import check_writable_dir
from s2s.numerics import apply_from_config
from s2s.options import validate
from s2s.run_lock import record_params_file, refuse_if_held

log = logging.getLogger("train")


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


def run_sweep_job(cfg: DictConfig, hc: Any) -> dict[str, Any]:
    """One job of a ``-m`` sweep: its own output folders, and DDP children that run only this job."""
    out = hc.runtime.output_dir
    job_paths = {"checkpoint_dir": f"{out}/checkpoints", "model_dir": f"{out}/models", "reports_dir": f"{out}/reports"}
    with open_dict(cfg):
        for key, value in job_paths.items():
            cfg.paths[key] = value
    sys.argv = single_job_argv(sys.argv[0], list(hc.overrides.task), job_paths)
    launch_env = dict(os.environ)
    try:
        from s2s.training import run_training

        return run_training(cfg)
    finally:
        end_distributed_job(launch_env)


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
    from s2s.training import run_training

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

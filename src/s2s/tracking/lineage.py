"""Lineage tags: where a training run's code, data and DVC experiment come from.

Tags, not params: none of it is a hyper-parameter, and a checksum or a path in the params would
make two runs of one configuration look different in the runs table.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

from s2s.common.io import sha256_file

# what git_dirty looks at: every tracked file except those DVC writes (params.yaml, dvc.lock, reports/)
CODE_PATHSPEC = (".", ":(exclude)params.yaml", ":(exclude)dvc.lock", ":(exclude)reports")


def git_info(cwd: str | Path = ".") -> dict[str, str]:
    """HEAD and whether a tracked file differs from it. Files DVC itself writes do not count:
    ``dvc exp run`` rewrites ``params.yaml`` from ``conf/`` first (the params are logged anyway),
    and ``dvc.lock`` and ``reports/`` are outputs, so a clean experiment is not tagged dirty."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHSPEC)
        diff = git("diff", "HEAD", "--", *CODE_PATHSPEC)
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    info = {"git_commit": commit, "mlflow.source.git.commit": commit, "git_dirty": str(bool(changed)).lower()}
    if changed:
        # identifies the uncommitted code/config (the DVC experiment's commit is made after the run)
        info["git_diff_sha256"] = hashlib.sha256(diff.encode()).hexdigest()
    return info


def dvc_experiment_tags() -> dict[str, str]:
    """The DVC experiment this process runs in (DVC sets these variables for ``dvc exp run``)."""
    tags = {}
    for var, tag in (
        ("DVC_EXP_NAME", "dvc.exp_name"),
        ("DVC_EXP_BASELINE_REV", "dvc.baseline_rev"),
    ):
        if os.environ.get(var):
            tags[tag] = os.environ[var]
    return tags


def data_version(prepared_dir: str | Path) -> str:
    """Content hash of the prepared data folder: sha256 over (file name, file sha256), sorted."""
    digest = hashlib.sha256()
    for path in sorted(Path(prepared_dir).iterdir()):
        if path.is_file():
            digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def lineage_tags(prepared_dir: str | Path, dataset: str, model_name: str) -> dict[str, str]:
    """Where a run's code, data and experiment come from (tags: none of it is a hyper-parameter)."""
    return {
        **git_info(),
        **dvc_experiment_tags(),
        "data_version": data_version(prepared_dir),
        "prepared_dir": str(prepared_dir),
        "dataset": dataset,
        "model": model_name,
    }

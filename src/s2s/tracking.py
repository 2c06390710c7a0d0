"""MLflow: the one module that talks to MLflow directly (beside Lightning's own MLFlowLogger).

Runs are created on rank 0 only (Lightning's logger is rank-zero); the run id is written beside
the exported model so the evaluate stage logs its test metrics into the same run.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from s2s.io import InputError, sha256_file


class TrackingUnreachable(RuntimeError):
    """A configured tracking server does not answer."""


def check_tracking_uri(uri: str, timeout: float = 10.0) -> None:
    """Fail within ``timeout`` seconds, naming the URI, if an http(s) tracking server does not answer.

    Called before any training starts, so a typo in the URI costs seconds, not a training run.
    """
    if not uri.startswith(("http://", "https://")):
        return
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status >= 400:
                raise TrackingUnreachable(f"MLflow tracking server {uri} answered HTTP {response.status}")
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
        raise TrackingUnreachable(
            f"MLflow tracking server {uri} is unreachable ({getattr(err, 'reason', err)}); "
            "start it, fix logger.tracking_uri / MLFLOW_TRACKING_URI, or unset it to use the local SQLite store"
        ) from err


def flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> {"model.encoder.hidden_size": 256, ...} for MLflow params."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def git_info(cwd: str | Path = ".") -> dict[str, str]:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (subprocess.CalledProcessError, FileNotFoundError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    return {"git_commit": commit, "git_dirty": str(dirty).lower()}


def data_version(prepared_dir: str | Path) -> str:
    """Content hash of the prepared data folder: sha256 over (file name, file sha256), sorted."""
    digest = hashlib.sha256()
    for path in sorted(Path(prepared_dir).iterdir()):
        if path.is_file():
            digest.update(f"{path.name}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


def dvc_lock_hash(out_path: str, lock_file: str | Path = "dvc.lock") -> str | None:
    """The md5 DVC recorded for ``out_path`` in dvc.lock, if any."""
    lock_file = Path(lock_file)
    if not lock_file.is_file():
        return None
    import yaml

    lock = yaml.safe_load(lock_file.read_text()) or {}
    for stage in (lock.get("stages") or {}).values():
        for out in stage.get("outs", []) or []:
            if out.get("path") == out_path:
                return out.get("md5")
    return None


def lineage_tags(prepared_dir: str | Path, dataset: str, model_name: str) -> dict[str, str]:
    tags = {**git_info(), "data_version": data_version(prepared_dir), "dataset": dataset, "model": model_name}
    lock = dvc_lock_hash(str(prepared_dir))
    if lock:
        tags["dvc_data_md5"] = lock
    return tags


def tracking_uri(configured: str | None) -> str:
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"


def log_to_run(
    uri: str,
    run_id: str,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    artifacts: list[tuple[str | Path, str | None]] | None = None,
) -> None:
    """Add metrics, tags and artifacts to an existing run (the evaluate stage's entry point)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, float(value))
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)
    for path, artifact_path in artifacts or []:
        if Path(path).exists():
            client.log_artifact(run_id, str(path), artifact_path)


def download_artifact(uri: str, run_id: str, artifact_path: str, dst_dir: str | Path) -> Path | None:
    """Download one artifact file of a run, or of its newest child run that has it (evaluations may
    be logged as nested runs under the training run); None if neither has it."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as err:
        raise InputError(f"mlflow:{run_id}: no such run in {uri} ({err.message})") from err
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'", order_by=["attributes.start_time DESC"]
    )
    for candidate in [run_id] + [c.info.run_id for c in children]:
        listed = client.list_artifacts(candidate, os.path.dirname(artifact_path) or None)
        if artifact_path in {a.path for a in listed}:
            Path(dst_dir).mkdir(parents=True, exist_ok=True)
            return Path(client.download_artifacts(candidate, artifact_path, str(dst_dir)))
    return None


def log_new_run(
    uri: str,
    experiment_name: str,
    run_name: str,
    metrics: Mapping[str, float],
    tags: Mapping[str, str],
    artifacts: list[tuple[str | Path, str | None]],
) -> str:
    """Create a finished run holding a report (e.g. a comparison of runs); returns its id."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(experiment_name)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(experiment_name, tags={"mlflow.experimentKind": "custom_model_development"})
    )
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    log_to_run(uri, run.info.run_id, metrics=metrics, artifacts=artifacts)
    client.set_terminated(run.info.run_id)
    return run.info.run_id

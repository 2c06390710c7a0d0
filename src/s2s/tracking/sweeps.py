"""Sweep parent runs: the one MLflow run a Hydra multirun's jobs are nested under.

Jobs run one after the other or side by side (a parallel launcher), each in its own process: the
parent's id is shared through a file in the sweep folder, written under a file lock.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Mapping
from pathlib import Path

from s2s.tracking.runs import ensure_experiment, read_run_link, write_run_link
from s2s.tracking.store import check_tracking_uri, first_line

log = logging.getLogger(__name__)


def sweep_parent_run(uri: str, experiment_name: str, sweep_dir: str | Path, name: str, tags: Mapping[str, str]) -> str:
    """The parent run of a Hydra sweep: created by its first job, found by the others.

    Its id lives in ``<sweep dir>/mlflow_parent_run.json``, written under a file lock, so jobs run
    one after the other or side by side (a parallel launcher) share one parent. Each job marks it
    running while it trains (:func:`end_sweep_job` ends it with the job's status after).
    """
    from mlflow.tracking import MlflowClient

    check_tracking_uri(uri, 10)
    sweep_dir = Path(sweep_dir)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    link = sweep_dir / "mlflow_parent_run.json"
    client = MlflowClient(tracking_uri=uri)
    with open(sweep_dir / ".mlflow_parent_run.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        known = read_run_link(link)
        if known.get("run_id") and known.get("tracking_uri") == uri:
            client.update_run(known["run_id"], status="RUNNING")
            return known["run_id"]
        run = client.create_run(ensure_experiment(uri, experiment_name), run_name=name, tags=dict(tags))
        write_run_link(link, {"run_id": run.info.run_id, "tracking_uri": uri})
        return run.info.run_id


def end_sweep_job(uri: str, parent_run_id: str, status: str) -> None:
    """After a job: the parent ends with the job's status (:func:`s2s.tracking.runs.end_status`):
    finished (until the next job starts), killed with a job a signal stopped, or failed with it."""
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).set_terminated(parent_run_id, status)
    except Exception as err:
        log.warning("sweep run %s not updated at %s: %s", parent_run_id, uri, first_line(err))

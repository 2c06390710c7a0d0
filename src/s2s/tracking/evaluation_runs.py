"""Evaluation runs: each evaluation of a trained model as a child run of the training's run.

An evaluation must never fail for its tracking, and must never leave a child run RUNNING: the
store's calls are bounded, a failure marks the child FAILED, a termination signal marks it KILLED,
and after a SIGKILL the next evaluation of the model closes it (each child records its process).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2s.common.io import pid_alive
from s2s.tracking.runs import log_to_run
from s2s.tracking.store import bound_http_retries, bounded, check_tracking_uri, first_line, sqlite_path, tracking_uri

log = logging.getLogger(__name__)

# an evaluation run records its process, so a later evaluation can tell a killed one from a running one
PID_TAG, HOST_TAG = "s2s.pid", "s2s.host"


def metric_key(name: str) -> str:
    """MLflow metric names allow letters, digits, ``_ - . / space``; anything else becomes ``_``."""
    return re.sub(r"[^\w\-./ ]", "_", name)


class RunKilled(BaseException):
    """A termination signal arrived while an MLflow run was open (not an Exception: nothing swallows it)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM, SIGINT and SIGHUP raise :class:`RunKilled` in the main thread while this block runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise RunKilled(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, previous in old.items():
            signal.signal(sig, previous)


def close_stale_evaluations(uri: str, parent_id: str, experiment_id: str) -> list[str]:
    """Mark KILLED the evaluation runs of this model left RUNNING by an evaluate that was killed
    (SIGKILL, power loss): those whose recorded process on this host is gone, and those of
    versions that recorded none. A live evaluation elsewhere (another host) is left alone."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    stale = []
    query = f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'"
    for run in client.search_runs([experiment_id], query):
        host, pid = run.data.tags.get(HOST_TAG), run.data.tags.get(PID_TAG)
        if pid is None or (host == socket.gethostname() and pid.isdigit() and not pid_alive(int(pid))):
            client.set_terminated(run.info.run_id, "KILLED")
            stale.append(run.info.run_id)
    if stale:
        log.warning("MLflow evaluation runs %s of a killed evaluate marked KILLED", ", ".join(stale))
    return stale


def log_evaluation(
    run_info: Mapping[str, Any],
    metrics: Mapping[str, float],
    artifacts: list[tuple[str | Path, str | None]] | None = None,
    decode_name: str = "default",
    tags: Mapping[str, str] | None = None,
    uri: str | None = None,
    timeout_s: float = 10.0,
    params: Mapping[str, str] | None = None,
) -> str | None:
    """Log one evaluation as a nested run under the training's run; returns its id.
    ``params``: the child run's own (the decode settings), never the training run's.

    Every evaluation (decode config, test set) gets its own child run, so none overwrites
    another's metrics; the training run also gets the metrics under ``<decode_name>/<metric>`` so
    the runs table can show them next to the hyper-parameters. Never raises: where the run link,
    the store or the run is missing (a collaborator's clone), it logs one warning line and returns None.
    Each request but artifact uploads gets ``timeout_s`` seconds. The child run never stays RUNNING:
    a failure marks it FAILED; SIGTERM/SIGINT/SIGHUP mark it KILLED and exit 128 + the signal number;
    after a SIGKILL, the next evaluation of the model marks it KILLED.
    """
    run_id = run_info.get("run_id")
    if not run_id:
        log.warning("no MLflow run recorded for this model; evaluation not logged to MLflow")
        return None
    uri = uri or tracking_uri()
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        log.warning("MLflow store %s does not exist; evaluation not logged to MLflow", db)
        return None
    child_id = None
    try:
        with signals_raise():
            bound_http_retries()
            check_tracking_uri(uri, timeout_s)
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=uri)
            parent = bounded(timeout_s, client.get_run, run_id)
            bounded(timeout_s, close_stale_evaluations, uri, run_id, parent.info.experiment_id)
            child_tags = {"mlflow.parentRunId": run_id, "decode": decode_name, **(tags or {})}
            child_tags.update({PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()})
            child = bounded(
                timeout_s,
                client.create_run,
                parent.info.experiment_id,
                run_name=f"{parent.info.run_name}-eval-{decode_name.replace('/', '-')}",
                tags=child_tags,
            )
            child_id = child.info.run_id
            bounded(timeout_s, log_to_run, uri, child_id, metrics=metrics, params=params)
            log_to_run(uri, child_id, artifacts=artifacts)  # a file copy, or HTTP bounded by MLflow's settings
            bounded(timeout_s, client.set_terminated, child_id)
            child_id, finished = None, child_id
            per_decode = {metric_key(f"{decode_name}/{k}"): v for k, v in metrics.items()}
            bounded(timeout_s, log_to_run, uri, run_id, metrics=per_decode)
            return finished
    except RunKilled as killed:
        if child_id:
            _end_quietly(uri, child_id, "KILLED", timeout_s)
        raise SystemExit(128 + killed.signum) from None
    except Exception as err:  # the store or the run is absent or broken: evaluation itself succeeded
        if child_id:
            _end_quietly(uri, child_id, "FAILED", timeout_s)
        log.warning("evaluation not logged to MLflow run %s at %s: %s", run_id, uri, first_line(err))
        return None


def _end_quietly(uri: str, run_id: str, status: str, timeout_s: float) -> None:
    """Best effort: a run that cannot be ended now is ended by the next evaluation."""
    from mlflow.tracking import MlflowClient

    try:
        bounded(timeout_s, MlflowClient(tracking_uri=uri).set_terminated, run_id, status)
    except Exception as err:
        log.warning("MLflow run %s could not be marked %s (%s)", run_id, status, first_line(err))

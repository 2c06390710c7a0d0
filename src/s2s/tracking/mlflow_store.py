"""MLflow: the one module that talks to MLflow directly (training's Lightning logger is in
``s2s.tracking.mlflow_logger``; this module imports no Lightning, so evaluate and compare start fast).

Why it looks the way it does:

- One store per project, however a run is launched. ``dvc exp run --queue/--temp`` runs in a copy
  under ``<project>/.dvc/tmp/exps/``; a store relative to the working directory would be thrown
  away with the copy, so the default store is anchored at the *original* project root.
- Runs are created on rank 0 only (Lightning's logger is rank-zero).
- A tracking server that dies mid-training must not stop or stall training: MLflow's HTTP retries
  are bounded (its own environment variables), every request is bounded in time
  (``logger.timeout_s``, also for SQLite, whose MLflow store otherwise retries for ~100 s) and a
  failed logging call costs one warning line. A store that is broken *before* training (corrupt,
  unwritable, locked, unreachable) is refused in one line before any work instead.
- The link from a trained model to its run lives in an uncached file (``reports/train_run.json``),
  never inside ``models/``: identical training gives byte-identical models, and a collaborator
  who pulls the model evaluates it without the run existing in their store.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import signal
import socket
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from s2s.common.config_dict import flatten
from s2s.common.io import InputError, pid_alive, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

# MLflow 3 opens an experiment in its GenAI view unless this experiment tag says otherwise
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# config keys that are not hyper-parameters: paths, where the data comes from (URLs, mirrors, sha256
# checksums: the data_version tag and the config.yaml artifact keep them), where to log
NON_PARAM_PREFIXES = ("paths.", "logger.", "data.sources.", "data.mirror", "data.timeout_s", "hydra.")
EXP_TMP_MARKER = (".dvc", "tmp", "exps")
# a training resumed from a checkpoint whose MLflow run is gone logs into a new run tagged with the old id
RESUMED_FROM_TAG = "s2s.resumed_from_run"
# an evaluation run records its process, so a later evaluation can tell a killed one from a running one
PID_TAG, HOST_TAG = "s2s.pid", "s2s.host"
# a registered version's validation BLEU, and what makes two versions' scores comparable (validation_key)
SCORE_TAG, VALIDATION_KEY_TAG = "val_bleu", "s2s.validation_key"

T = TypeVar("T")

# what git_dirty looks at: every tracked file except those DVC writes (params.yaml, dvc.lock, reports/)
CODE_PATHSPEC = (".", ":(exclude)params.yaml", ":(exclude)dvc.lock", ":(exclude)reports")


class TrackingUnreachable(RuntimeError):
    """A configured tracking server does not answer, or the tracking store cannot be used."""


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an error message (MLflow's may span pages), for one-line warnings."""
    return ((str(err).strip().splitlines() or [type(err).__name__])[0] or type(err).__name__)[:limit]


def bounded(timeout_s: float, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``call(*args, **kwargs)`` with a time limit: TimeoutError after ``timeout_s`` seconds.

    MLflow bounds HTTP requests (its environment variables) but not its SQLite store: a locked or
    unwritable database is retried for about 100 s per request. The call runs in a daemon thread
    that is abandoned on timeout (it cannot be cancelled; it ends with the process at the latest).
    """
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = call(*args, **kwargs)
        except BaseException as err:  # handed to the caller
            result["error"] = err

    thread = threading.Thread(target=target, name="mlflow-request", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {timeout_s:g} s (logger.timeout_s)")
    if "error" in result:
        raise result["error"]
    return result["value"]


def project_root(start: str | Path | None = None) -> Path:
    """The original project root, also from inside a DVC experiment's temporary copy.

    ``dvc exp run --queue`` / ``--temp`` run in ``<root>/.dvc/tmp/exps/<tmp>/``: the part before
    ``.dvc/tmp/exps`` is the project the user works in. Otherwise the git top level, else ``start``.
    """
    start = Path(start or Path.cwd()).resolve()
    parts = start.parts
    for i in range(len(parts) - len(EXP_TMP_MARKER)):
        if parts[i : i + len(EXP_TMP_MARKER)] == EXP_TMP_MARKER:
            return Path(*parts[:i])
    try:
        top = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"], cwd=start, capture_output=True, text=True, check=True
        ).stdout.strip()
        return Path(top) if top else start
    except (subprocess.CalledProcessError, FileNotFoundError):
        return start


def tracking_uri(configured: str | None = None) -> str:
    """``logger.tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else ``<project root>/mlflow.db``."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlflow.db'}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(urllib.parse.unquote(uri[len("sqlite:///") :]))


def bound_http_retries(max_retries: int = 2, timeout_s: int = 10) -> None:
    """Bound MLflow's HTTP retries (default: 7 retries, 120 s timeout, about 8 minutes on a dead server).

    Uses MLflow's documented environment variables; values the user set explicitly win.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(max_retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


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


def check_sqlite_store(uri: str, timeout: float = 10.0) -> None:
    """Fail within ``timeout`` seconds, naming the file, if a SQLite store cannot be read and written.

    A truncated ``mlflow.db`` (``database disk image is malformed``), an unwritable or a locked one
    would otherwise stop training at its first logging call, or after ~100 s of MLflow's retries.
    A store that does not exist yet only needs a folder it can be created in. Nothing is kept: the
    probe's write (which needs the rollback journal beside the file, so a read-only filesystem
    fails here, not 80 s into training) is rolled back.
    """
    db = sqlite_path(uri)
    if db is None:
        return
    fix = "move it aside (a new store is created), set logger.tracking_uri, or logger=none"
    if not db.exists():
        folder = next((p for p in db.parents if p.exists()), None)
        if folder is None or not os.access(folder, os.W_OK | os.X_OK):
            raise TrackingUnreachable(f"MLflow store {db} cannot be created: {folder} is not writable; {fix}")
        return

    def probe() -> None:
        with sqlite3.connect(db, timeout=timeout) as con:
            problems = [row[0] for row in con.execute("pragma quick_check")]
            if problems != ["ok"]:
                raise sqlite3.DatabaseError(f"database disk image is malformed ({problems[0]})")
            con.execute("begin immediate")  # takes the write lock: locked stores fail here
            try:  # a real write, rolled back: a read-only file or filesystem fails only when one is made
                con.execute("create table s2s_write_probe (x)")
            finally:
                con.execute("rollback")

    try:
        bounded(timeout, probe)
    except (sqlite3.Error, OSError, TimeoutError) as err:
        raise TrackingUnreachable(f"MLflow store {db} is unusable ({first_line(err)}); {fix}") from err


def check_store(uri: str, timeout: float = 10.0) -> None:
    """Before any work: the tracking server answers, or the SQLite store is readable and writable."""
    check_tracking_uri(uri, timeout)
    check_sqlite_store(uri, timeout)


def run_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The values that determine a result: the flattened config without paths, checksums and logging."""
    return {k: v for k, v in flatten(cfg).items() if not k.startswith(NON_PARAM_PREFIXES)}


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


def run_name(model_name: str) -> str:
    """What differs at a glance: the DVC experiment name (when there is one) and the model."""
    exp = os.environ.get("DVC_EXP_NAME")
    return f"{exp}-{model_name}" if exp else model_name


def ensure_experiment(uri: str, name: str) -> str:
    """Create (or find) the experiment, tagged as model training, its artifacts beside a SQLite store.

    A SQLite store puts artifacts under ``./mlruns`` of whatever directory creates the experiment:
    inside a queued DVC experiment that is a throwaway copy, so the location is set explicitly.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        db = sqlite_path(uri)
        location = (db.parent / "mlruns").resolve().as_uri() if db else None
        try:
            experiment_id = client.create_experiment(
                name, artifact_location=location, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
            )
        except MlflowException:  # created meanwhile by a concurrent run
            experiment_id = client.get_experiment_by_name(name).experiment_id
        return experiment_id
    if experiment.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    return experiment.experiment_id


def open_run(uri: str, experiment_name: str, run_id: str | None, name: str, tags: Mapping[str, str]) -> str:
    """The MLflow run a training logs to, its tags those of *this* (re)start; returns its id.

    Resuming (``run_id`` from ``checkpoints/run.json``): the run's tags and name are set again, since a
    rerun of a killed ``dvc exp run`` runs under another experiment name (``dvc.exp_name``); a run
    that no longer exists (deleted, or another store) is replaced by a new run tagged
    ``s2s.resumed_from_run=<old id>``, with one warning, instead of blocking the resume.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient
    from mlflow.tracking.context.registry import resolve_tags
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    client = MlflowClient(tracking_uri=uri)
    experiment_id = ensure_experiment(uri, experiment_name)
    tags = {**tags, MLFLOW_RUN_NAME: name}
    if run_id:
        try:
            gone = client.get_run(run_id).info.lifecycle_stage == "deleted"
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            gone = True
        if not gone:
            for key, value in tags.items():
                client.set_tag(run_id, key, value)
            client.update_run(run_id, status="RUNNING")  # a killed run was left RUNNING/FAILED/KILLED
            return run_id
        log.warning(
            "MLflow run %s (checkpoints/run.json) is not in %s; training resumes in a new run tagged %s=%s",
            run_id,
            uri,
            RESUMED_FROM_TAG,
            run_id,
        )
        tags[RESUMED_FROM_TAG] = run_id
    return client.create_run(experiment_id, tags=resolve_tags(tags)).info.run_id


def log_to_run(
    uri: str,
    run_id: str,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
    artifacts: list[tuple[str | Path, str | None]] | None = None,
    params: Mapping[str, str] | None = None,
) -> None:
    """Add metrics, tags, params and artifacts (files or folders that exist) to an existing run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    for key, value in (params or {}).items():
        client.log_param(run_id, key, value)
    for key, value in (metrics or {}).items():
        client.log_metric(run_id, key, float(value))
    for key, value in (tags or {}).items():
        client.set_tag(run_id, key, value)
    for path, artifact_path in artifacts or []:
        path = Path(path)
        if path.is_dir():
            client.log_artifacts(run_id, str(path), artifact_path)
        elif path.is_file():
            client.log_artifact(run_id, str(path), artifact_path)


def write_run_link(path: str | Path, info: Mapping[str, Any]) -> None:
    """Record which MLflow run trained the model, outside the cached ``models/`` output."""
    write_json_atomic(path, dict(info))


def read_run_link(path: str | Path) -> dict[str, Any]:
    """The run link written by training, or {} when there is none."""
    path = Path(path)
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}


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
        else client.create_experiment(experiment_name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
    )
    run = client.create_run(experiment_id, run_name=run_name, tags=dict(tags))
    log_to_run(uri, run.info.run_id, metrics=metrics, artifacts=artifacts)
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _first_line(err: BaseException) -> str:
    return ((str(err).strip().splitlines() or [type(err).__name__])[0])[:200]


@contextlib.contextmanager
def active_run(uri: str, run_id: str, system_metrics: bool | None) -> Iterator[None]:
    """Make the training's run MLflow's active run while training and export run.

    MLflow's fluent API needs it: its system-metrics monitor (``system/*`` metrics: CPU, memory,
    GPU; ``system_metrics`` None lets ``MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING`` decide), dataset
    inputs and ``log_model`` attach to the active run. A store that fails costs a warning, never
    the training.
    """
    import mlflow

    if run_id is None:  # a busy store has not answered yet: nothing is active (no run created here)
        yield
        return
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics)
    except Exception as err:
        log.warning("MLflow run %s could not be made active at %s: %s", run_id, uri, _first_line(err))
        yield
        return
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    finally:
        try:
            mlflow.end_run(status)
        except Exception as err:
            log.warning("MLflow run %s not ended at %s: %s", run_id, uri, _first_line(err))


@contextlib.contextmanager
def active_run_when_open(logger: Any, system_metrics: bool | None, on_start: Callable[[], None]) -> Iterator[None]:
    """:func:`active_run` for the training's logger, started when its run is open: now, or when a
    busy store answers during this block (system metrics and ``on_start``, the dataset inputs,
    then begin). A run that opens after the block is not made active."""
    import mlflow

    state = {"open": True, "started": False}

    def start(run_id: str) -> None:
        if not state["open"]:
            return
        try:
            mlflow.set_tracking_uri(logger.tracking_uri)
            mlflow.start_run(run_id=run_id, log_system_metrics=system_metrics)
        except Exception as err:
            log.warning("MLflow run %s could not be made active at %s: %s", run_id, logger.tracking_uri,
                        _first_line(err))  # fmt: skip
            return
        state["started"] = True
        on_start()

    logger.when_open(start)
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    finally:
        state["open"] = False
        if state["started"]:
            try:
                mlflow.end_run(status)
            except Exception as err:
                log.warning("MLflow run not ended at %s: %s", logger.tracking_uri, _first_line(err))


def log_datasets(prepared_dir: str | Path, dataset: str) -> None:
    """The prepared training and validation data as the active run's dataset inputs, with digests."""
    try:
        import mlflow
        from mlflow.data.dataset_source_registry import resolve_dataset_source
        from mlflow.data.meta_dataset import MetaDataset

        if mlflow.active_run() is None:  # the run is not open yet: log_input would create one
            return

        for split, context in (("train", "training"), ("valid", "validation")):
            path = (Path(prepared_dir) / f"{split}.npz").resolve()
            digest = sha256_file(path)[:32]  # MLflow stores at most 36 characters
            with warnings.catch_warnings():  # MLflow registers its local source under two schemes and says so
                warnings.simplefilter("ignore")
                source = resolve_dataset_source(path.as_uri())
            mlflow.log_input(MetaDataset(source, name=f"{dataset}-{split}", digest=digest), context=context)
    except Exception as err:
        log.warning("dataset inputs not logged to MLflow: %s", _first_line(err))


def log_translator(
    model_file: str | Path,
    spm_file: str | Path,
    decode_cfg: Mapping[str, Any],
    target_lang: str | None,
    max_src_pieces: int | None,
    registered_name: str | None,
    alias: str | None,
    score: float | None,
    numerics: Mapping[str, Any] | None = None,
    validation: str | None = None,
    tags: Mapping[str, str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """Log the exported model as an MLflow Model into the active run, register it under
    ``registered_name`` (a version with ``description`` and ``tags``) and move ``alias`` to it when
    its validation BLEU (``score``) is the best of that name's versions validated on the same set
    (``validation``, :func:`validation_key`). ``numerics``: the run's, applied by the loaded model.
    Returns what was done; a failing store costs a warning."""
    from s2s.tracking import mlflow_model

    try:
        info = mlflow_model.log_model(
            model_file,
            spm_file,
            decode_cfg,
            Path(__file__).resolve().parents[3] / "pyproject.toml",  # the checkout this code runs from
            target_lang,
            max_src_pieces,
            registered_name or None,
            numerics,
        )
    except Exception as err:
        log.warning("MLflow Model not logged: %s", _first_line(err))
        return {}
    out: dict[str, Any] = {"model_uri": info.model_uri}
    version = info.registered_model_version
    if registered_name and version is not None:
        out.update(registered_model=registered_name, registered_version=str(version))
        try:
            describe_version(registered_name, str(version), description, tags)
            if alias and promote(registered_name, str(version), alias, score, key=validation):
                out["alias"] = alias
        except Exception as err:
            log.warning("model version %s of %s not promoted: %s", version, registered_name, _first_line(err))
    return out


def describe_version(name: str, version: str, description: str | None, tags: Mapping[str, str] | None) -> None:
    """A registered version says what it is: its description and tags (data, direction, preset...)."""
    import mlflow

    client = mlflow.MlflowClient()
    if description:
        client.update_model_version(name, version, description=description)
    for key, value in (tags or {}).items():
        client.set_model_version_tag(name, version, key, str(value))


def console_score(score: float) -> str:
    """A score as the console prints it (``BLEU 31.51``): the registry's tags hold the same text."""
    return f"{score:.2f}"


def registry_lock_path(uri: str) -> Path | None:
    """The file lock beside a SQLite store that makes a promotion atomic (None for other stores)."""
    db = sqlite_path(uri)
    return None if db is None else db.with_name(db.name + ".registry.lock")


@contextmanager
def registry_lock(uri: str | None) -> Iterator[None]:
    """Hold the store's registry lock (a SQLite store; a server store relies on compare-and-set)."""
    if uri is None:
        import mlflow

        uri = mlflow.get_tracking_uri()
    path = registry_lock_path(uri)
    if path is None:
        yield
        return
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def finite_score(value: Any) -> float | None:
    """A tag's score as a float, or None where it is absent or not finite (NaN, inf)."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        return None
    return score if math.isfinite(score) else None


def _alias_holder(client: Any, name: str, alias: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:  # no version has the alias yet
        return None


def promote(
    name: str, version: str, alias: str, score: float | None, uri: str | None = None, key: str | None = None
) -> bool:
    """Tag the version with its validation BLEU; point ``alias`` at it if no aliased version
    validated on the same set (``key``, :func:`validation_key`) scored higher.

    The score is tagged and compared as the console prints it (two decimals). Never promoted: an
    unvalidated model (``score`` None, e.g. averaged weights), a non-finite score (NaN, inf), a
    BLEU of 0 (every translation empty, as a diverged tiny run gives), a version whose validation
    set is unknown (``key`` None) or differs from the champion's. Atomic: under a file lock beside a
    SQLite store; for any store, the alias is read
    again after it is moved (compare-and-set), and a better comparable version registered meanwhile
    gets it back, so two trainings finishing together leave it on the better one."""
    import mlflow

    if score is None:
        return False
    if finite_score(score) is None:
        log.warning("%s version %s: validation BLEU %s is not finite; not promoted to @%s", name, version, score, alias)
        return False
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.set_model_version_tag(name, version, SCORE_TAG, console_score(score))
    score = float(console_score(score))  # compared as shown: equal to two decimals, the newer wins
    if score <= 0:
        log.warning(
            "%s version %s: validation BLEU %s (empty or useless translations); not promoted to @%s",
            name, version, console_score(score), alias,
        )  # fmt: skip
        return False
    if key is None:
        log.warning("%s version %s: its validation set is unknown; not promoted to @%s", name, version, alias)
        return False
    client.set_model_version_tag(name, version, VALIDATION_KEY_TAG, key)
    with registry_lock(uri):
        for _attempt in range(5):
            current = _alias_holder(client, name, alias)
            if current is not None and str(current.version) == str(version):
                return True
            best = finite_score(current.tags.get(SCORE_TAG)) if current is not None else None
            if current is not None and best is not None:
                theirs = current.tags.get(VALIDATION_KEY_TAG)
                if theirs is not None and theirs != key:
                    log.warning(
                        "%s version %s was validated on another set than %s@%s (version %s): not promoted; "
                        "its BLEU cannot be compared (register it under another logger.registered_model_name)",
                        name, version, name, alias, current.version,
                    )  # fmt: skip
                    return False
                if score < best:
                    log.info("%s version %s (val BLEU %.2f) stays below %s@%s (%.2f)", name, version, score, name,
                             alias, best)  # fmt: skip
                    return False
            client.set_registered_model_alias(name, alias, version)
            # compare-and-set: a promotion that wrote in between (a server store has no lock) is
            # decided again, against every comparable version registered since the old champion
            since = int(current.version) if current is not None else 0
            rival = _best_comparable(client, name, key, since)
            if rival is not None and str(rival[1]) != str(version) and rival[0] > score:
                version, score = str(rival[1]), rival[0]
                continue
            holder = _alias_holder(client, name, alias)
            if holder is not None and str(holder.version) == str(version):
                return True
        return False


def _best_comparable(client: Any, name: str, key: str, since: int) -> tuple[float, int] | None:
    """(score, version) of the best version after ``since`` validated on the set ``key``."""
    found = []
    for mv in client.search_model_versions(f"name = '{name}'"):
        score = finite_score(mv.tags.get(SCORE_TAG))
        if int(mv.version) > since and score is not None and mv.tags.get(VALIDATION_KEY_TAG) == key:
            found.append((score, int(mv.version)))
    return max(found) if found else None


def download_model(model_uri: str, dst_dir: str | Path, uri: str | None = None) -> Path:
    """``models:/<name>@<alias>``, ``models:/<name>/<version>`` or ``runs:/<run id>/model`` to a local
    MLflow Model folder; a missing model or store is a user error naming the URI."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    uri = uri or tracking_uri()
    db = sqlite_path(uri)
    if db is not None and not db.is_file():
        raise InputError(f"translate.model={model_uri}: the MLflow store {db} does not exist")
    bound_http_retries()
    try:
        check_tracking_uri(uri, 10)
        path = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(dst_dir), tracking_uri=uri)
    except (MlflowException, TrackingUnreachable, OSError) as err:
        raise InputError(f"translate.model={model_uri}: not found in {uri} ({_first_line(err)})") from err
    return Path(path)


def sweep_parent_run(uri: str, experiment_name: str, sweep_dir: str | Path, name: str, tags: Mapping[str, str]) -> str:
    """The parent run of a Hydra sweep: created by its first job, found by the others.

    Its id lives in ``<sweep dir>/mlflow_parent_run.json``, written under a file lock, so jobs run
    one after the other or side by side (a parallel launcher) share one parent. Each job marks it
    running while it trains (:func:`end_sweep_job` marks it finished or failed after).
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


def end_sweep_job(uri: str, parent_run_id: str, ok: bool) -> None:
    """After a job: the parent is finished (until the next job starts), or failed with this job."""
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=uri).set_terminated(parent_run_id, "FINISHED" if ok else "FAILED")
    except Exception as err:
        log.warning("sweep run %s not updated at %s: %s", parent_run_id, uri, _first_line(err))



def validation_key(valid_tsv: str | Path, scoring: Mapping[str, Any]) -> str:
    """What makes two validation BLEUs comparable, as a sha256: the validation set (``valid.tsv``:
    every sentence with its languages, so the direction too) and how it is scored (``scoring``:
    the part validated, the output length limits; greedy decoding and sacreBLEU, whose version is included)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        sacrebleu = version("sacrebleu")
    except PackageNotFoundError:
        sacrebleu = None
    what = {
        "valid_tsv_sha256": sha256_file(valid_tsv),
        "scoring": {"search": "greedy", "metric": "bleu", "sacrebleu": sacrebleu, **dict(scoring)},
    }
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()

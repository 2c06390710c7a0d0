"""MLflow runs: a training's run (named, opened or resumed, made active, given its params, dataset
inputs and link), and a finished run holding a report (compare).

- Runs are created on rank 0 only (Lightning's logger is rank-zero).
- The link from a trained model to its run lives in an uncached file (``reports/train_run.json``),
  never inside ``models/``: identical training gives byte-identical models, and a collaborator
  who pulls the model evaluates it without the run existing in their store.
- A store that fails while a run is active costs a warning, never the training.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from s2s.common.config_dict import flatten
from s2s.common.io import sha256_file, write_json_atomic
from s2s.tracking.store import first_line, sqlite_path

log = logging.getLogger(__name__)

# MLflow 3 opens an experiment in its GenAI view unless this experiment tag says otherwise
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# config keys that are not hyper-parameters: paths, where the data comes from (URLs, mirrors, sha256
# checksums: the data_version tag and the config.yaml artifact keep them), where to log
NON_PARAM_PREFIXES = ("paths.", "logger.", "data.sources.", "data.mirror", "data.timeout_s", "hydra.")
# a training resumed from a checkpoint whose MLflow run is gone logs into a new run tagged with the old id
RESUMED_FROM_TAG = "s2s.resumed_from_run"


def end_status(err: BaseException | None) -> str:
    """The status a run ends with: ``FINISHED`` without an error; ``KILLED`` when a signal or Ctrl-C
    stopped it, also where the stop led to another exception (Lightning turns a Ctrl-C into
    ``SystemExit(1)``); ``FAILED`` for any other error.

    A stop is an exception with a ``signum`` (training's ``TrainingInterrupted``, evaluation's
    ``RunKilled``), a ``KeyboardInterrupt`` or Lightning's ``SIGTERMException`` (known by name: this
    module does not import Lightning)."""
    if err is None:
        return "FINISHED"
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, KeyboardInterrupt) or getattr(err, "signum", None) is not None:
            return "KILLED"
        if type(err).__name__ == "SIGTERMException":
            return "KILLED"
        err = err.__cause__ or err.__context__
    return "FAILED"


def run_params(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The values that determine a result: the flattened config without paths, checksums and logging."""
    return {k: v for k, v in flatten(cfg).items() if not k.startswith(NON_PARAM_PREFIXES)}


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
        log.warning("MLflow run %s could not be made active at %s: %s", run_id, uri, first_line(err))
        yield
        return
    status = "FINISHED"
    try:
        yield
    except BaseException as err:
        status = end_status(err)  # KILLED when a signal stopped it
        raise
    finally:
        try:
            mlflow.end_run(status)
        except Exception as err:
            log.warning("MLflow run %s not ended at %s: %s", run_id, uri, first_line(err))


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
                        first_line(err))  # fmt: skip
            return
        state["started"] = True
        on_start()

    logger.when_open(start)
    status = "FINISHED"
    try:
        yield
    except BaseException as err:
        status = end_status(err)  # KILLED when a signal stopped training: its resume continues the run
        raise
    finally:
        state["open"] = False
        if state["started"]:
            try:
                mlflow.end_run(status)
            except Exception as err:
                log.warning("MLflow run not ended at %s: %s", logger.tracking_uri, first_line(err))


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
        log.warning("dataset inputs not logged to MLflow: %s", first_line(err))

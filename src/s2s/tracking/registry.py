"""The Model Registry: a trained model logged as an MLflow Model, its registered version described
and tagged, the alias promoted to the best comparable version; models and run artifacts downloaded.

Promotion compares validation BLEUs only between versions validated on the same set, scored the
same way (:func:`validation_key`), and is atomic: a file lock beside a SQLite store, and for any
store a compare-and-set, so two trainings finishing together leave the alias on the better one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2s.common.io import InputError, sha256_file
from s2s.tracking.store import (
    TrackingUnreachable,
    bound_http_retries,
    check_tracking_uri,
    first_line,
    quiet_artifact_progress,
    sqlite_path,
    tracking_uri,
)

log = logging.getLogger(__name__)

# a registered version's validation BLEU, and what makes two versions' scores comparable (validation_key)
SCORE_TAG, VALIDATION_KEY_TAG = "val_bleu", "s2s.validation_key"
# on the logged model and its registered version while an export is under way (removed once the
# version is described): what a killed export leaves carries it, and the run's next export deletes it
EXPORT_TAG, EXPORT_UNDER_WAY = "s2s.export", "incomplete"


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
    Returns what was done; a failing store costs a warning.

    What an earlier export into this run left half made (killed: a PENDING logged model, a version
    registered but not described) is deleted first (:func:`remove_killed_exports`)."""
    import mlflow

    from s2s.tracking import mlflow_model

    try:
        active = mlflow.active_run()
        if active is not None:
            remove_killed_exports(active.info.run_id)
    except Exception as err:
        log.warning("what a killed export left in MLflow was not looked for: %s", first_line(err))
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
            tags={EXPORT_TAG: EXPORT_UNDER_WAY},
        )
    except Exception as err:
        log.warning("MLflow Model not logged: %s", first_line(err))
        return {}
    out: dict[str, Any] = {"model_uri": info.model_uri}
    version = info.registered_model_version
    if registered_name and version is not None:
        out.update(registered_model=registered_name, registered_version=str(version))
    try:
        if version is not None and registered_name:
            describe_version(registered_name, str(version), description, tags)
        end_export(info.model_id, registered_name, None if version is None else str(version))
        if version is not None and registered_name and alias:
            if promote(registered_name, str(version), alias, score, key=validation):
                out["alias"] = alias
    except Exception as err:
        log.warning("MLflow Model %s (version %s of %s) not described or promoted: %s", info.model_id, version,
                    registered_name, first_line(err))  # fmt: skip
    return out


def end_export(model_id: str, name: str | None, version: str | None) -> None:
    """The export's logged model and version are complete: their under-way mark goes."""
    import mlflow

    client = mlflow.MlflowClient()
    client.delete_logged_model_tag(model_id, EXPORT_TAG)
    if name and version is not None:
        client.delete_model_version_tag(name, version, EXPORT_TAG)


def remove_killed_exports(run_id: str) -> list[str]:
    """Delete what a killed export into this run left half made: its logged models still PENDING or
    marked under way, and its registered versions marked under way (registered, never described:
    no score, never promoted). Only one training uses a run at a time (the checkpoint folder's lock),
    so nothing of a live export is touched. One warning names what went; returns it."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    gone = []
    for mv in client.search_model_versions(f"run_id = '{run_id}'"):
        if mv.tags.get(EXPORT_TAG) == EXPORT_UNDER_WAY:
            client.delete_model_version(mv.name, mv.version)
            gone.append(f"version {mv.version} of {mv.name}")
    for model in client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run_id}'"):
        if model.status == "PENDING" or model.tags.get(EXPORT_TAG) == EXPORT_UNDER_WAY:
            client.delete_logged_model(model.model_id)
            gone.append(f"logged model {model.model_id} ({model.status})")
    if gone:
        log.warning("MLflow: deleted what a killed export of run %s left half made: %s", run_id, ", ".join(gone))
    return gone


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
    quiet_artifact_progress()
    try:
        check_tracking_uri(uri, 10)
        # MLflow 3 resolves a models:/ URI in the process's registry and a runs:/ URI's logged model in
        # the process's tracking store (mlflow.get_registry_uri() / get_tracking_uri(), not the URIs
        # given below), which are otherwise $MLFLOW_REGISTRY_URI / $MLFLOW_TRACKING_URI or ./mlflow.db
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=model_uri, dst_path=str(dst_dir), tracking_uri=uri, registry_uri=uri
        )
    except (MlflowException, TrackingUnreachable, OSError) as err:
        raise InputError(f"translate.model={model_uri}: not found in {uri} ({first_line(err)})") from err
    return Path(path)


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

"""The MLflow store: where it is, whether it can be used, and calls to it that cannot hang.

Every other module of ``s2s.tracking`` reaches the store through these (none of them imports
Lightning, so evaluate and compare start fast; training's logger is ``s2s.tracking.mlflow_logger``).

- One store per project, however a run is launched. ``dvc exp run --queue/--temp`` runs in a copy
  under ``<project>/.dvc/tmp/exps/``; a store relative to the working directory would be thrown
  away with the copy, so the default store is anchored at the *original* project root.
- A tracking server that dies mid-training must not stop or stall training: MLflow's HTTP retries
  are bounded (its own environment variables), every request is bounded in time
  (``logger.timeout_s``, also for SQLite, whose MLflow store otherwise retries for ~100 s) and a
  failed logging call costs one warning line. A store that is broken *before* training (corrupt,
  unwritable, locked, unreachable) is refused in one line before any work instead.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

EXP_TMP_MARKER = (".dvc", "tmp", "exps")

T = TypeVar("T")


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


def quiet_artifact_progress() -> None:
    """No MLflow progress bars for artifact transfers in this process (its documented
    ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR``): a ``models:/`` translate printed about 80 tqdm
    "Downloading artifacts" updates for a few small files, a training three. A value the user set wins."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


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

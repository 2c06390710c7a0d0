"""Training's MLflow logger: Lightning's MLFlowLogger on the project's store, made outage-proof."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger

from s2s.tracking.mlflow_store import (
    bound_http_retries,
    bounded,
    first_line,
    log_to_run,
    open_run,
    run_name,
    tracking_uri,
)

log = logging.getLogger(__name__)


class ResilientMLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger that survives a tracking server going away mid-training.

    A failed logging call is dropped with one warning line (one per outage, not per call); while
    the server stays down, calls are skipped for ``retry_after_s`` seconds so that each logging
    step does not pay MLflow's retries again. Training and its local checkpoints go on. Every call
    but artifact uploads (a file copy for SQLite; bounded by MLflow's HTTP settings for a server)
    gets ``timeout_s`` seconds: a locked SQLite store does not stall training.
    """

    def __init__(self, *args: Any, retry_after_s: float = 60.0, timeout_s: float = 10.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tracking_uri: str = kwargs.get("tracking_uri") or tracking_uri()
        self.retry_after_s = retry_after_s
        self.timeout_s = timeout_s
        self._down_since: float | None = None

    @property
    def run_id(self) -> str | None:
        """The run opened by :func:`make_logger` (Lightning's would ask the store again, unguarded)."""
        return self._run_id

    def _guard(self, what: str, call: Any, *args: Any, _bounded: bool = True, **kwargs: Any) -> None:
        if self._down_since is not None and time.monotonic() - self._down_since < self.retry_after_s:
            return
        try:
            if _bounded:
                bounded(self.timeout_s, call, *args, **kwargs)
            else:
                call(*args, **kwargs)
        except Exception as err:  # any transport or server error: logging is never worth a crash
            if self._down_since is None:
                log.warning(
                    "MLflow %s failed at %s (%s); training goes on, logging retried later",
                    what,
                    self.tracking_uri,
                    first_line(err),
                )
            self._down_since = time.monotonic()
        else:
            if self._down_since is not None:
                log.warning("MLflow at %s answers again; logging resumed", self.tracking_uri)
            self._down_since = None

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._guard("log_metrics", super().log_metrics, metrics, step)

    def log_hyperparams(self, params: Any) -> None:
        self._guard("log_hyperparams", super().log_hyperparams, params)

    def finalize(self, status: str = "success") -> None:
        self._guard("finalize", super().finalize, status)

    def log_artifacts(self, artifacts: list[tuple[str | Path, str | None]]) -> None:
        """Upload files or folders that exist into this run (skipped with a warning on failure)."""
        self._guard(
            "log_artifacts", log_to_run, self.tracking_uri, self.run_id, artifacts=artifacts, _bounded=False
        )


def make_logger(
    cfg: Any, run_id: str | None, tags: dict[str, str], name: str | None = None
) -> ResilientMLFlowLogger | None:
    """The run's MLflow logger on the project's store (None with ``logger=none``, or when the run
    cannot be opened: training then goes on untracked, after one warning saying so).

    ``run_id``: the run of the checkpoint being resumed; its tags are updated to this (re)start, and
    a run that is gone is replaced by a new one linked to it (see :func:`s2s.tracking.mlflow_store.open_run`).
    ``name`` replaces the usual run name (a sweep job's names its overrides).
    """
    lcfg = cfg.logger
    if lcfg.get("name", "mlflow") != "mlflow":
        return None
    bound_http_retries(lcfg.get("http_max_retries", 2), lcfg.get("http_timeout_s", 10))
    uri = tracking_uri(lcfg.get("tracking_uri"))
    timeout = float(lcfg.get("timeout_s", 10))
    name = name or run_name(lcfg.get("run_name") or cfg.model.name)
    try:
        run_id = bounded(timeout, open_run, uri, lcfg.experiment_name, run_id, name, tags)
    except Exception as err:  # the store was checked before any work; it broke since: do not stop training
        log.warning(
            "MLflow run could not be opened at %s (%s); training goes on WITHOUT tracking: its params, "
            "metrics and artifacts are not recorded in MLflow (reports/train_run.json names no run)",
            uri,
            first_line(err),
        )
        return None
    return ResilientMLFlowLogger(
        experiment_name=lcfg.experiment_name,
        run_name=name,
        tracking_uri=uri,
        tags=tags,
        run_id=run_id,
        retry_after_s=lcfg.get("retry_after_s", 60),
        timeout_s=timeout,
    )

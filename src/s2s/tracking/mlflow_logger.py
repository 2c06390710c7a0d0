"""Training's MLflow logger: Lightning's MLFlowLogger on the project's store, made outage-proof."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pytorch_lightning.loggers import MLFlowLogger

from s2s.tracking.runs import end_status, log_to_run, open_run, run_name
from s2s.tracking.store import bound_http_retries, bounded, first_line, tracking_uri

log = logging.getLogger(__name__)


class RunOpener:
    """Opens the MLflow run in a thread of its own, so a store that answers late is waited for
    without stalling training; a store that answers after the training gave up gets its run deleted
    (no empty RUNNING run is left behind)."""

    def __init__(self, *args: Any) -> None:
        self.args = args
        self.run_id: str | None = None
        self.error: BaseException | None = None
        self.abandoned = False
        self.failed_at = 0.0
        self._lock = threading.Lock()
        self.thread = threading.Thread(target=self._open, name="mlflow-open-run", daemon=True)
        self.thread.start()

    def _open(self) -> None:
        try:
            run_id = open_run(*self.args)
        except BaseException as err:  # handed to the logger
            self.failed_at = time.monotonic()
            self.error = err
            return
        with self._lock:
            self.run_id = run_id
            abandoned = self.abandoned
        if abandoned:  # the training ended untracked meanwhile: nothing was sent to this run
            try:
                from mlflow.tracking import MlflowClient

                MlflowClient(tracking_uri=self.args[0]).delete_run(run_id)
            except Exception as err:
                log.warning("MLflow run %s, opened after training gave up, not deleted: %s", run_id, first_line(err))

    def wait(self, timeout_s: float) -> bool:
        """True once the run is open (within ``timeout_s``); False while the store has not answered."""
        self.thread.join(timeout_s)
        return self.run_id is not None

    def abandon(self) -> bool:
        """Give up on the run unless it is open by now (then True: it is used after all)."""
        with self._lock:
            self.abandoned = self.run_id is None
            return self.run_id is not None


class ResilientMLFlowLogger(MLFlowLogger):
    """Lightning's MLFlowLogger that survives a tracking server going away mid-training.

    A failed logging call is dropped with one warning line (one per outage, not per call); while
    the server stays down, calls are skipped for ``retry_after_s`` seconds so that each logging
    step does not pay MLflow's retries again. Training and its local checkpoints go on. Every call
    but artifact uploads (a file copy for SQLite; bounded by MLflow's HTTP settings for a server)
    gets ``timeout_s`` seconds: a locked SQLite store does not stall training.
    """

    def __init__(
        self,
        *args: Any,
        retry_after_s: float = 60.0,
        timeout_s: float = 10.0,
        opener: RunOpener | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.tracking_uri: str = kwargs.get("tracking_uri") or tracking_uri()
        self.retry_after_s = retry_after_s
        self.timeout_s = timeout_s
        self._down_since: float | None = None
        # a run still being opened (the store did not answer in time): calls wait in the backlog
        self._opener = opener
        self._backlog: list[tuple[str, Any, tuple[Any, ...], dict[str, Any]]] = []
        self._on_open: list[Any] = []

    @property
    def run_id(self) -> str | None:
        """The run opened by :func:`make_logger` (Lightning's would ask the store again, unguarded);
        None while the store has not answered yet."""
        self._adopt()
        return self._run_id

    @property
    def experiment(self) -> Any:
        """Lightning's client; while the run is not open, the bare client (Lightning's property would
        create a run of its own there, unbounded, e.g. for ``logger.name``)."""
        if not self._adopt():
            return self._mlflow_client
        return super().experiment

    def _adopt(self) -> bool:
        """Take the run once the opener has it, then send the backlog; True when there is a run."""
        if self._run_id is not None:
            return True
        opener = self._opener
        if opener is None or opener.run_id is None:
            failed = opener is not None and opener.error is not None
            if failed and time.monotonic() - opener.failed_at >= self.retry_after_s:  # try again: answers now?
                log.warning("MLflow run not opened at %s (%s); retried", self.tracking_uri, first_line(opener.error))
                self._opener = RunOpener(*opener.args)
            return False
        self._run_id, self._opener = opener.run_id, None
        log.warning("MLflow at %s answers: run %s opened; what was logged meanwhile is sent now", self.tracking_uri,
                    self._run_id)  # fmt: skip
        for callback in self._on_open:
            callback(self._run_id)
        backlog, self._backlog = self._backlog, []
        for what, call, args, kwargs in backlog:
            self._guard(what, call, *args, **kwargs)
        return True

    def when_open(self, callback: Any) -> None:
        """Call ``callback(run_id)`` once the run is open (now, if it is)."""
        if self.run_id is not None:
            callback(self._run_id)
        else:
            self._on_open.append(callback)

    def wait_for_run(self, timeout_s: float) -> bool:
        """At the end of training: wait up to ``timeout_s`` for a run still being opened and send
        the backlog; else say once that this training is NOT tracked (and the run the store may
        still create is deleted). True when there is a run."""
        if self._adopt():
            return True
        opener = self._opener
        if opener is not None and (opener.wait(timeout_s) or opener.abandon()) and self._adopt():
            return True
        log.warning(
            "MLflow at %s did not answer during training or %g s after: this training is NOT tracked (no run, "
            "no registered model; reports/train_run.json names no run)", self.tracking_uri, timeout_s,
        )  # fmt: skip
        self._backlog = []
        return False

    def join_opener(self, timeout_s: float | None = None) -> None:
        """Wait for a pending opener's thread (tests)."""
        if self._opener is not None:
            self._opener.thread.join(timeout_s)

    def _guard(self, what: str, call: Any, *args: Any, _bounded: bool = True, **kwargs: Any) -> None:
        if not self._adopt():
            if self._opener is not None:  # sent when the run is open
                self._backlog.append((what, call, args, {**kwargs, "_bounded": _bounded}))
            return
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
        """Lightning's end of the run: ``failed`` for any exception, which it calls this in the
        handler of; a training stopped by a signal (saved, resumable) ends KILLED instead.

        ``success`` comes when ``fit`` returns, before the stage exports and logs the model: while
        the run is the stage's active run (:func:`s2s.tracking.runs.active_run_when_open`), that
        ends it after the export, so a kill during the export leaves it RUNNING, not FINISHED."""
        if status == "success" and self._run_id is not None:
            import mlflow

            active = mlflow.active_run()
            if active is not None and active.info.run_id == self._run_id:
                return
        if status == "failed" and end_status(sys.exc_info()[1]) == "KILLED":
            status = "KILLED"  # Lightning's MLFlowLogger passes a status it does not know to MLflow as is
        self._guard("finalize", super().finalize, status)

    def log_artifacts(self, artifacts: list[tuple[str | Path, str | None]]) -> None:
        """Upload files or folders that exist into this run (skipped with a warning on failure)."""
        if self.run_id is None:
            return
        self._guard(
            "log_artifacts", log_to_run, self.tracking_uri, self.run_id, artifacts=artifacts, _bounded=False
        )


def make_logger(
    cfg: Any, run_id: str | None, tags: dict[str, str], name: str | None = None
) -> ResilientMLFlowLogger | None:
    """The run's MLflow logger on the project's store (None with ``logger=none``). A store that does
    not answer within ``logger.timeout_s`` does not stop training, and training does not give up
    on it: the run is opened when it answers (:class:`RunOpener`), what was logged meanwhile is sent
    then, and only at the end of training (:meth:`ResilientMLFlowLogger.wait_for_run`) does a run
    that never opened say it is untracked.

    ``run_id``: the run of the checkpoint being resumed; its tags are updated to this (re)start, and
    a run that is gone is replaced by a new one linked to it (see :func:`s2s.tracking.runs.open_run`).
    ``name`` replaces the usual run name (a sweep job's names its overrides).
    """
    lcfg = cfg.logger
    if lcfg.get("name", "mlflow") != "mlflow":
        return None
    bound_http_retries(lcfg.get("http_max_retries", 2), lcfg.get("http_timeout_s", 10))
    uri = tracking_uri(lcfg.get("tracking_uri"))
    timeout = float(lcfg.get("timeout_s", 10))
    name = name or run_name(lcfg.get("run_name") or cfg.model.name)
    opener = RunOpener(uri, lcfg.experiment_name, run_id, name, tags)
    if not opener.wait(timeout) and opener.error is None:
        log.warning(
            "MLflow at %s did not answer within %g s (logger.timeout_s); training goes on and its run is opened "
            "when the store answers (params and metrics are kept until then)", uri, timeout,
        )  # fmt: skip
    elif opener.error is not None:  # the store was checked before any work; it broke since: keep trying
        log.warning(
            "MLflow run could not be opened at %s (%s); training goes on, the run is opened when the store "
            "answers (params and metrics are kept until then)", uri, first_line(opener.error),
        )  # fmt: skip
    return ResilientMLFlowLogger(
        experiment_name=lcfg.experiment_name,
        run_name=name,
        tracking_uri=uri,
        tags=tags,
        run_id=opener.run_id,
        retry_after_s=lcfg.get("retry_after_s", 60),
        timeout_s=timeout,
        opener=None if opener.run_id is not None else opener,
    )

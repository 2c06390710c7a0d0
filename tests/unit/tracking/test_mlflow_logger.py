"""A store that does not answer when training starts (issue 34, item 6): the run is opened when it
answers, what was logged meanwhile is sent then, and no empty RUNNING run is left behind. A gate
(an event the test opens) stands for the busy store: nothing waits on time."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from s2s.tracking import mlflow_logger
from s2s.tracking.runs import active_run_when_open, open_run
from s2s.training.signals import TrainingInterrupted


def config(uri: str) -> object:
    return OmegaConf.create({
        "logger": {"name": "mlflow", "tracking_uri": uri, "experiment_name": "busy", "timeout_s": 0.05,
                   "retry_after_s": 0},
        "model": {"name": "m"},
    })  # fmt: skip


@pytest.fixture
def busy_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, threading.Event]:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(tracking_uri=uri).create_experiment("busy")
    gate = threading.Event()
    real = open_run
    monkeypatch.setattr(mlflow_logger, "open_run", lambda *args: (gate.wait(), real(*args))[1])
    return uri, gate


def runs(uri: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    return client.search_runs([client.get_experiment_by_name("busy").experiment_id])


def test_a_run_opened_late_gets_what_was_logged_meanwhile(busy_store: tuple[str, threading.Event]) -> None:
    uri, gate = busy_store
    logger = mlflow_logger.make_logger(config(uri), None, {"t": "v"}, "late")
    assert logger is not None, "training went untracked at the first timeout"
    assert logger.run_id is None
    logger.timeout_s = 600  # each call's bound, once the store answers (a loaded machine is slow)
    logger.log_hyperparams({"optim.lr": 0.01})
    logger.log_metrics({"train_loss": 2.0}, step=1)
    assert runs(uri) == []
    gate.set()  # the store answers
    assert logger.wait_for_run(600)
    logger.log_metrics({"train_loss": 1.0}, step=2)
    (run,) = runs(uri)
    assert run.info.run_id == logger.run_id and run.data.params == {"optim.lr": "0.01"}
    history = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "train_loss")
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.0)]
    assert run.data.tags["t"] == "v"


def test_a_store_that_never_answers_leaves_no_running_run(
    busy_store: tuple[str, threading.Event], caplog: pytest.LogCaptureFixture
) -> None:
    uri, gate = busy_store
    logger = mlflow_logger.make_logger(config(uri), None, {}, "never")
    logger.log_metrics({"train_loss": 2.0}, step=1)
    assert not logger.wait_for_run(0.05)  # the end of training: the store still does not answer
    assert "NOT tracked" in caplog.text
    gate.set()  # it answers after the run gave up: the run it creates is not left RUNNING
    logger.join_opener()
    assert [r.info.status for r in runs(uri)] == []


def test_lightning_creates_no_run_of_its_own_while_the_store_is_busy(busy_store: tuple[str, threading.Event]) -> None:
    uri, gate = busy_store
    logger = mlflow_logger.make_logger(config(uri), None, {}, "busy")
    assert logger.name is None and logger.version is None  # Lightning asks these for folder names
    assert runs(uri) == []
    gate.set()
    assert logger.wait_for_run(600)
    assert logger.name == MlflowClient(tracking_uri=uri).get_experiment_by_name("busy").experiment_id
    assert len(runs(uri)) == 1


def test_a_run_opened_late_becomes_active_with_its_dataset_inputs(busy_store: tuple[str, threading.Event]) -> None:
    """System metrics and dataset inputs attach to MLflow's active run: it starts when the run opens."""
    import mlflow

    uri, gate = busy_store
    logger = mlflow_logger.make_logger(config(uri), None, {}, "late")
    started = []
    with active_run_when_open(logger, False, lambda: started.append(mlflow.active_run().info.run_id)):
        assert mlflow.active_run() is None
        gate.set()
        assert logger.wait_for_run(600)
        assert started == [logger.run_id] and mlflow.active_run().info.run_id == logger.run_id
    assert mlflow.active_run() is None
    assert MlflowClient(tracking_uri=uri).get_run(logger.run_id).info.status == "FINISHED"


@pytest.mark.parametrize(
    "stop, status", [(TrainingInterrupted(signal.SIGTERM), "KILLED"), (ValueError("nan"), "FAILED")]
)
def test_a_training_stopped_by_a_signal_ends_its_run_killed(
    busy_store: tuple[str, threading.Event], stop: BaseException, status: str
) -> None:
    """Lightning ends the logger's run with ``failed`` for any exception (in its handler), then the
    stage's active run ends: a signal's stop is KILLED at both, an error FAILED (issue 34, item 10)."""
    uri, gate = busy_store
    gate.set()
    logger = mlflow_logger.make_logger(config(uri), None, {}, "stopped")
    assert logger.wait_for_run(600)
    logger.timeout_s = 600
    logger.log_metrics({"train_loss": 1.0}, step=1)  # as training does: Lightning's logger is then initialised
    with pytest.raises(type(stop)), active_run_when_open(logger, False, lambda: None):
        try:
            raise stop
        except BaseException:  # Lightning's _interrupt: logger.finalize("failed") in the handler
            logger.finalize("failed")
            assert MlflowClient(tracking_uri=uri).get_run(logger.run_id).info.status == status
            raise
    assert MlflowClient(tracking_uri=uri).get_run(logger.run_id).info.status == status


def test_the_run_finishes_after_the_export_not_when_fit_ends(busy_store: tuple[str, threading.Event]) -> None:
    """Lightning ends its logger's run with ``success`` when ``fit`` returns, before the stage exports
    and logs the model: the run stays RUNNING until the stage's active run ends after the export, so a
    kill during the export does not leave a FINISHED run without its model (issue 34, item 10)."""
    uri, gate = busy_store
    gate.set()
    logger = mlflow_logger.make_logger(config(uri), None, {}, "exported")
    assert logger.wait_for_run(600)
    logger.timeout_s = 600
    logger.log_metrics({"train_loss": 1.0}, step=1)
    client = MlflowClient(tracking_uri=uri)
    with active_run_when_open(logger, False, lambda: None):
        logger.finalize("success")  # Lightning's teardown at the end of fit
        assert client.get_run(logger.run_id).info.status == "RUNNING"  # the export comes now
    assert client.get_run(logger.run_id).info.status == "FINISHED"
    alone = mlflow_logger.make_logger(config(uri), None, {}, "fit only")  # no active run of a stage around it
    assert alone.wait_for_run(600)
    alone.timeout_s = 600
    alone.log_metrics({"train_loss": 1.0}, step=1)
    alone.finalize("success")
    assert client.get_run(alone.run_id).info.status == "FINISHED"

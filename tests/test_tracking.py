"""MLflow tracking against a real tracking server on 127.0.0.1, an unreachable one, and a multirun."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT, compose_config, copy_tiny, not_a_param, run_script

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(base: Path) -> tuple[subprocess.Popen, str]:
    """A real ``mlflow server`` on 127.0.0.1 with its own SQLite store under ``base``.

    The port is chosen free, but another process may take it before the server binds: the
    server then exits (or a stranger answers), so the server must prove it is ours (an experiment
    created through it appears in our own database) before it is used; otherwise try another port.
    """
    db = base / "mlflow.db"
    for _attempt in range(5):
        port = free_port()
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "mlflow", "server",
                "--backend-store-uri", f"sqlite:///{db}",
                "--artifacts-destination", str(base / "artifacts"),
                "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the server's workers die with it
        )
        uri = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300  # only a server that never starts takes this long
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        if proc.poll() is None and time.monotonic() < deadline:
            token = f"probe-{port}-{time.monotonic_ns()}"
            try:
                MlflowClient(tracking_uri=uri).create_experiment(token)
                with sqlite3.connect(db) as con:
                    ours = con.execute("select 1 from experiments where name=?", (token,)).fetchone()
            except Exception:
                ours = None
            if ours:
                return proc, uri
        stop(proc)
    pytest.fail("mlflow server did not start on any of 5 ports")


def stop(proc: subprocess.Popen) -> None:
    """End the server and the uvicorn/job workers it spawned (one process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL also takes workers that outlive the parent
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    proc.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    proc, uri = start_mlflow_server(tmp_path_factory.mktemp("mlflow"))
    yield uri
    stop(proc)


def test_train_and_evaluate_land_in_one_run(tiny_data: Path, tmp_path: Path, mlflow_server: str) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    tracking = [f"logger.tracking_uri={mlflow_server}", "logger.experiment_name=tracking-test", "trainer.max_epochs=1"]
    run_script("train", *paths, *tracking)
    run_script("evaluate", *paths, *tracking, "decode=greedy")
    run_id = json.loads((tmp_path / "reports/train_run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    # the resolved config, flattened
    assert params["model.encoder.hidden_size"] == "32"
    assert params["model.name"] == "bilstm_attn"
    assert params["optim.lr"] == str(compose_config(["preset=tiny"]).optim.lr)
    assert int(params["parameters"]) > 0
    # metric histories
    assert len(client.get_metric_history(run_id, "train_loss_step")) >= 2
    for key in ("val_bleu", "val_loss", "lr", "tokens_per_sec", "train_loss_epoch"):
        assert client.get_metric_history(run_id, key), key
    # the test metrics: in the training's run under the decode config's name, and in a nested run
    bleu = json.loads((tmp_path / "reports/metrics.json").read_text())["bleu"]
    assert metrics["test/greedy1/bleu"] == bleu
    assert "test/greedy1/chrf" in metrics
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")
    assert [c.data.tags["decode"] for c in children] == ["test/greedy1"]
    assert children[0].data.metrics["bleu"] == bleu
    assert children[0].data.tags["sacrebleu_signature"].startswith("nrefs:1|case:mixed")
    # a second evaluation with another decode config adds its own metrics, overwriting none
    run_script("evaluate", *paths, *tracking, "decode=beam", "decode.beam_size=2")
    metrics = client.get_run(run_id).data.metrics
    assert metrics["test/greedy1/bleu"] == bleu and "test/beam2/bleu" in metrics
    assert len(client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{run_id}'")) == 2
    # lineage
    assert len(tags["git_commit"]) in (40, len("unknown"))
    assert tags["git_dirty"] in ("true", "false", "unknown")
    assert not [k for k, v in params.items() if k.startswith(("paths.", "logger.")) or not_a_param(v)]
    # every test set and direction, under one readable name each
    per_set = json.loads((tmp_path / "reports/metrics.json").read_text())["test_sets"]
    for set_name, per_dir in per_set.items():
        for direction, s in per_dir.items():
            assert metrics[f"test/greedy1/{set_name}/{direction}/chrf"] == s["chrf"], (set_name, direction)
    assert client.get_experiment(run.info.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert len(tags["data_version"]) == 64
    assert tags["dataset"] == "multi30k" and tags["model"] == "bilstm_attn"
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "config.yaml" in artifacts
    assert client.get_run(run_id).outputs.model_outputs, "the MLflow Model (runs:/<id>/model) is the run's output"
    child = children[0].info.run_id
    assert {a.path for a in client.list_artifacts(child, "eval")} >= {"eval/metrics.json", "eval/translations"}


def test_unreachable_server_fails_fast_naming_the_uri(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    result = run_script("train", *paths, f"logger.tracking_uri={uri}", "logger.timeout_s=3", check=False)
    assert result.returncode == 2
    assert uri in result.stderr and "unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists(), "nothing may be written before the server check"


def test_multirun_is_one_parent_run_with_a_named_child_per_job(tiny_data: Path, tmp_path: Path) -> None:
    paths = [p for p in copy_tiny(tiny_data, tmp_path) if not p.startswith("hydra.run.dir")]
    db = f"sqlite:///{tmp_path}/multirun.db"
    sweep = tmp_path / "sweep"
    run_script(
        "train",
        "-m",
        *paths,
        "optim.lr=0.001,0.003",
        "trainer.max_epochs=1",
        "logger.registered_model_name=null",
        f"logger.tracking_uri={db}",
        "logger.experiment_name=sweep",
        f"hydra.sweep.dir={sweep}",
    )
    client = MlflowClient(tracking_uri=db)
    experiment = client.get_experiment_by_name("sweep")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {"sweep optim.lr=0.001,0.003", "bilstm_attn lr=0.001", "bilstm_attn lr=0.003"}
    parent = runs["sweep optim.lr=0.001,0.003"]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["hydra.sweep.dir"] == str(sweep)
    for num, lr in enumerate(("0.001", "0.003")):
        child = runs[f"bilstm_attn lr={lr}"]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.tags["hydra.overrides"] == f"optim.lr={lr}"
        assert child.data.tags["hydra.job.dir"] == str(sweep / str(num))
        assert child.data.params["optim.lr"] == lr
    # each job kept its own model
    assert len(list(sweep.glob("*/models/model.pt"))) == 2
    # the README's command that evaluates a sweep's models, each with its job's own config
    command = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("for job in"))
    env = {**os.environ, "SWEEP": str(sweep)}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for num in (0, 1):
        assert json.loads((sweep / str(num) / "reports/metrics.json").read_text())["bleu"] >= 0
    children = client.search_runs([experiment.experiment_id], "tags.decode = 'test/beam5'")
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {
        runs["bilstm_attn lr=0.001"].info.run_id,
        runs["bilstm_attn lr=0.003"].info.run_id,
    }


def test_server_dying_mid_training_costs_a_warning_not_the_run(tiny_data: Path, tmp_path: Path) -> None:
    """Kill the tracking server once training has logged to it: training finishes, exports its model."""
    base = tmp_path / "server"
    base.mkdir()
    proc, uri = start_mlflow_server(base)
    paths = copy_tiny(tiny_data, tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP")}
    train = subprocess.Popen(
        [sys.executable, "src/train.py", *paths, f"logger.tracking_uri={uri}", "logger.experiment_name=dying",
         "trainer.max_epochs=2"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # the observable event: the server has stored a training-loss point of this run
        deadline = time.monotonic() + 600
        logged = None
        while not logged and train.poll() is None and time.monotonic() < deadline:
            with sqlite3.connect(base / "mlflow.db") as con:
                logged = con.execute("select 1 from metrics where key='train_loss_step' limit 1").fetchone()
            time.sleep(0.2)
        assert logged, "training never logged to the server"
        assert train.poll() is None, "training ended before the server could be killed"
        stop(proc)
        output, _ = train.communicate(timeout=900)  # MLflow's default retries would stall far longer
    finally:
        stop(proc)
        if train.poll() is None:
            train.kill()
    assert train.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    assert (tmp_path / "models/model.pt").is_file()
    assert "training goes on" in output
    assert output.count("training goes on") == 1, "one warning per outage, not one per logging call"

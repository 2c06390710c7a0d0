"""MLflow tracking against a real tracking server on 127.0.0.1, an unreachable one, and a multirun."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import copy_tiny, run_script

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{base}/mlflow.db",
            "--artifacts-destination",
            str(base / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start")
            time.sleep(1)
    yield uri
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_train_and_evaluate_land_in_one_run(tiny_data: Path, tmp_path: Path, mlflow_server: str) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    tracking = [f"logger.tracking_uri={mlflow_server}", "logger.experiment_name=tracking-test"]
    run_script("train", *paths, *tracking)
    run_script("evaluate", *paths, *tracking, "decode=greedy")
    run_id = json.loads((tmp_path / "models/run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    # the resolved config, flattened
    assert params["model.encoder.hidden_size"] == "32"
    assert params["model.name"] == "bilstm_attn"
    assert params["optim.lr"] == "0.001"
    assert int(params["parameters"]) > 0
    # metric histories
    assert len(client.get_metric_history(run_id, "train_loss_step")) >= 2
    for key in ("val_bleu", "val_loss", "lr", "tokens_per_sec", "train_loss_epoch"):
        assert client.get_metric_history(run_id, key), key
    # the test metrics sit in the training's run
    assert metrics["test_bleu"] == json.loads((tmp_path / "reports/metrics.json").read_text())["bleu"]
    assert "test_chrf" in metrics
    # lineage
    assert len(tags["git_commit"]) in (40, len("unknown"))
    assert tags["git_dirty"] in ("true", "false", "unknown")
    assert len(tags["data_version"]) == 64
    assert tags["dataset"] == "multi30k" and tags["model"] == "bilstm_attn"
    assert tags["sacrebleu_signature"].startswith("nrefs:1|case:mixed")
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "spm.model", "model.pt", "eval", "curves"} <= artifacts
    assert {a.path for a in client.list_artifacts(run_id, "eval")} >= {"eval/metrics.json", "eval/translations"}


def test_unreachable_server_fails_fast_naming_the_uri(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    start = time.time()
    result = run_script("train", *paths, f"logger.tracking_uri={uri}", "logger.timeout_s=3", check=False)
    assert result.returncode == 2
    assert uri in result.stderr and "unreachable" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.time() - start < 60
    assert not (tmp_path / "checkpoints").exists(), "nothing may be written before the server check"


def test_multirun_gives_one_run_per_job(tiny_data: Path, tmp_path: Path) -> None:
    paths = [p for p in copy_tiny(tiny_data, tmp_path) if not p.startswith("hydra.run.dir")]
    db = f"sqlite:///{tmp_path}/multirun.db"
    run_script(
        "train",
        "-m",
        *paths,
        "model=bilstm_attn,lstm_noattn",
        f"logger.tracking_uri={db}",
        "logger.experiment_name=sweep",
        f"hydra.sweep.dir={tmp_path}/sweep",
    )
    client = MlflowClient(tracking_uri=db)
    experiment = client.get_experiment_by_name("sweep")
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(r.data.tags["model"] for r in runs) == ["bilstm_attn", "lstm_noattn"]
    # each job kept its own model
    assert len(list((tmp_path / "sweep").glob("*/models/model.pt"))) == 2

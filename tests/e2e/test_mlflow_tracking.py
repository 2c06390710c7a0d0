"""MLflow tracking against a real tracking server on 127.0.0.1, an unreachable one, and a multirun."""

from __future__ import annotations

import json
import os
import shlex
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
from omegaconf import OmegaConf

from conftest import HELPERS, ROOT, compose_config, copy_tiny, not_a_param, run_script
from helpers.processes import free_port, stop

pytestmark = pytest.mark.slow


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
    per_set = json.loads((tmp_path / "reports/eval/metrics.json").read_text())["test_sets"]
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
    # the sweep's command line, every override (issue 34, item 13): the sweep can be run again from it
    assert shlex.split(parent.data.tags["hydra.overrides"]) == [
        *paths, "optim.lr=0.001,0.003", "trainer.max_epochs=1", "logger.registered_model_name=null",
        f"logger.tracking_uri={db}", "logger.experiment_name=sweep",
    ]  # fmt: skip
    for num, lr in enumerate(("0.001", "0.003")):
        child = runs[f"bilstm_attn lr={lr}"]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        # every override of the job, the preset included, so the job can be rerun from its tags
        overrides = shlex.split(child.data.tags["hydra.overrides"])
        assert "preset=tiny" in overrides and f"optim.lr={lr}" in overrides, overrides
        assert overrides == OmegaConf.load(sweep / str(num) / ".hydra/overrides.yaml")
        job_config = OmegaConf.load(sweep / str(num) / ".hydra/config.yaml")
        assert compose_config(overrides) == job_config, "the tag's overrides compose the job's config"
        assert child.data.tags["hydra.job.dir"] == str(sweep / str(num))
        assert child.data.params["optim.lr"] == lr
    # each job kept its own model
    assert len(list(sweep.glob("*/models/model.pt"))) == 2
    # docs/tracking.md's command that evaluates a sweep's models, each with its job's own config
    page = (ROOT / "docs/tracking.md").read_text(encoding="utf-8")
    command = next(line for line in page.splitlines() if line.startswith("for job in"))
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


# --- the tracking store must not stop training (issue 26, items 6 and 10) ---


def make_store(path: Path) -> str:
    """A real MLflow SQLite store (schema and one experiment), as a first run leaves it."""
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri).create_experiment("existing")
    return uri


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def test_truncated_store_is_refused_in_one_line_before_any_work(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    db = tmp_path / "mlflow.db"
    make_store(db)
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    result = run_script("train", *paths, f"logger.tracking_uri=sqlite:///{db}", check=False)
    error = one_error_line(result)
    assert str(db) in error and "unusable" in error, error
    assert not (tmp_path / "checkpoints").exists(), "nothing may be touched before the store check"


def test_locked_store_is_refused_within_logger_timeout(tiny_data: Path, tmp_path: Path) -> None:
    """MLflow retries a SQLite store it cannot use for ~100 s; logger.timeout_s bounds it like a server."""
    paths = copy_tiny(tiny_data, tmp_path)
    db = tmp_path / "mlflow.db"
    make_store(db)
    holder = subprocess.Popen(  # another process holds the write lock
        [sys.executable, "-c", "import sqlite3, sys\ncon = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
         "con.execute('begin exclusive')\nprint('locked', flush=True)\nsys.stdin.read()", str(db)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        result = run_script("train", *paths, f"logger.tracking_uri=sqlite:///{db}", "logger.timeout_s=2", check=False)
        elapsed = time.monotonic() - start
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    error = one_error_line(result)
    assert str(db) in error and "locked" in error, error
    assert elapsed < 60, f"refused after {elapsed:.0f} s: the 2 s timeout did not bound the store"
    assert not (tmp_path / "checkpoints").exists()


def test_resumed_run_takes_the_current_dvc_experiment_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A killed `dvc exp run`, rerun, gets a new DVC_EXP_NAME: the resumed MLflow run must say so.

    The train stage's own logger factory, with the variable DVC sets for each `dvc exp run`.
    """
    from s2s.tracking import mlflow_logger
    from s2s.tracking.lineage import dvc_experiment_tags

    uri = make_store(tmp_path / "mlflow.db")
    cfg = compose_config(["preset=tiny", f"logger.tracking_uri={uri}", "logger.experiment_name=exp"])
    monkeypatch.setenv("DVC_EXP_NAME", "rabid-drab")
    logger = mlflow_logger.make_logger(cfg, None, dvc_experiment_tags())
    assert logger.wait_for_run(600)  # a busy machine's store may answer after logger.timeout_s
    run_id = logger.run_id
    monkeypatch.setenv("DVC_EXP_NAME", "gross-mime")  # the rerun of the killed experiment, as DVC starts it
    resumed = mlflow_logger.make_logger(cfg, run_id, dvc_experiment_tags())
    assert resumed.wait_for_run(600) and resumed.run_id == run_id
    run = MlflowClient(tracking_uri=uri).get_run(run_id)
    assert run.data.tags["dvc.exp_name"] == "gross-mime"
    assert run.info.run_name == "gross-mime-bilstm_attn"
    assert run.info.status == "RUNNING"


def test_resume_whose_mlflow_run_is_gone_continues_in_a_linked_run(tiny_data: Path, tmp_path: Path) -> None:
    """Kill training, lose its MLflow run (another store), rerun: it resumes, in a new run linked to the old."""
    paths = copy_tiny(tiny_data, tmp_path)
    run = ["trainer.max_epochs=2", "trainer.max_steps=24", "train.save_every_n_steps=3", "logger.experiment_name=r"]
    first_db, second_db = tmp_path / "first.db", tmp_path / "second.db"
    env = {**os.environ, "DVC_EXP_NAME": "rabid-drab"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen(
        [sys.executable, "src/train.py", *paths, *run, f"logger.tracking_uri=sqlite:///{first_db}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    last = tmp_path / "checkpoints/last.ckpt"
    deadline = time.monotonic() + 300
    while not last.exists():  # the first periodic checkpoint: training is under way
        assert proc.poll() is None, "training ended before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint"
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    old_id = json.loads((tmp_path / "checkpoints/run.json").read_text())["run_id"]
    result = run_script(
        "train", *paths, *run, f"logger.tracking_uri=sqlite:///{second_db}", env={"DVC_EXP_NAME": "gross-mime"}
    )
    output = result.stdout + result.stderr
    assert "Restoring states from the checkpoint" in output or "Restored all states" in output
    assert sum(old_id in line for line in output.splitlines() if "WARNING" in line) == 1, output[-3000:]
    new_id = json.loads((tmp_path / "reports/train_run.json").read_text())["run_id"]
    assert new_id and new_id != old_id
    new = MlflowClient(tracking_uri=f"sqlite:///{second_db}").get_run(new_id)
    assert new.data.tags["s2s.resumed_from_run"] == old_id
    assert new.data.tags["dvc.exp_name"] == "gross-mime" and new.info.status == "FINISHED"
    assert (tmp_path / "models/model.pt").is_file()


# --- an interrupted training says so in MLflow (issue 34, item 10) ---


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1], ids=lambda s: s.name)
def test_an_interrupted_training_is_killed_and_its_resume_finishes_the_same_run(
    tiny_data: Path, tmp_path: Path, sig: signal.Signals
) -> None:
    """A signal stops the real train script at an exact batch: its run is KILLED (not FAILED, which
    says the training broke); the same command resumes into the same run, which ends FINISHED."""
    paths = copy_tiny(tiny_data, tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = ["trainer.max_epochs=1", f"logger.tracking_uri={uri}", "logger.experiment_name=killed"]
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    stopped = subprocess.run(
        [sys.executable, str(HELPERS / "signal_at_batch.py"), "3", sig.name, "src/train.py", *paths, *run],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert stopped.returncode == 128 + sig, stopped.stderr[-3000:]
    run_id = json.loads((tmp_path / "checkpoints/run.json").read_text())["run_id"]
    client = MlflowClient(tracking_uri=uri)
    assert client.get_run(run_id).info.status == "KILLED"
    assert not (tmp_path / "models/model.pt").exists()

    resumed = run_script("train", *paths, *run)
    output = resumed.stdout + resumed.stderr
    assert "Restoring states from the checkpoint" in output or "Restored all states" in output, output[-3000:]
    assert json.loads((tmp_path / "reports/train_run.json").read_text())["run_id"] == run_id
    assert client.get_run(run_id).info.status == "FINISHED"
    experiment = client.get_experiment_by_name("killed").experiment_id
    assert [r.info.run_id for r in client.search_runs([experiment])] == [run_id], "one run, continued"


# --- a killed evaluate leaves no RUNNING run (issue 26, item 15) ---

# the real log_evaluation, held while it uploads the evaluation's artifacts (the event the test waits on);
# log_to_run is patched where log_evaluation looks it up
EVALUATE_HELD = """
import sys
from s2s.tracking import evaluation_runs
real = evaluation_runs.log_to_run
def held(uri, run_id, metrics=None, tags=None, artifacts=None, **more):
    if artifacts:
        print("uploading", flush=True)
        sys.stdin.read()
    return real(uri, run_id, metrics=metrics, tags=tags, artifacts=artifacts, **more)
evaluation_runs.log_to_run = held
metrics, artifacts = {"bleu": 1.0}, [(sys.argv[3], "eval")]
evaluation_runs.log_evaluation({"run_id": sys.argv[2]}, metrics, artifacts, "test/greedy1", uri=sys.argv[1])
"""


def evaluation_held(tmp_path: Path) -> tuple[str, str, subprocess.Popen]:
    uri = make_store(tmp_path / "mlflow.db")
    client = MlflowClient(tracking_uri=uri)
    parent = client.create_run(client.get_experiment_by_name("existing").experiment_id).info.run_id
    (tmp_path / "metrics.json").write_text("{}")
    proc = subprocess.Popen(
        [sys.executable, "-c", EVALUATE_HELD, uri, parent, str(tmp_path / "metrics.json")],
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout.readline().strip() == "uploading"
    return uri, parent, proc


def children(uri: str, parent: str) -> list:
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_run(parent).info.experiment_id
    return client.search_runs([experiment], f"tags.mlflow.parentRunId = '{parent}'", order_by=["attributes.start_time"])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_evaluate_stopped_by_a_signal_marks_its_run_killed(tmp_path: Path, sig: signal.Signals) -> None:
    uri, parent, proc = evaluation_held(tmp_path)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert proc.returncode == 128 + sig
    [child] = children(uri, parent)
    assert child.info.status == "KILLED"


def test_next_evaluation_closes_the_run_of_a_sigkilled_one(tmp_path: Path) -> None:
    from s2s.tracking.evaluation_runs import log_evaluation

    uri, parent, proc = evaluation_held(tmp_path)
    proc.kill()
    proc.wait(timeout=60)
    [stale] = children(uri, parent)
    assert stale.info.status == "RUNNING"  # SIGKILL cannot be handled: the next evaluation closes it
    new = log_evaluation({"run_id": parent}, {"bleu": 2.0}, [], "test/greedy1", uri=uri)
    status = {c.info.run_id: c.info.status for c in children(uri, parent)}
    assert status == {stale.info.run_id: "KILLED", new: "FINISHED"}


# --- a kill during the export leaves nothing half-made for long (issue 34, item 14) ---


def test_the_next_export_removes_what_a_killed_export_left_half_made(tiny_data: Path, tmp_path: Path) -> None:
    """SIGKILL inside MLflow's log_model (the logged model PENDING), then after the version is
    registered but before it is described (an untagged version): the next export of the run
    deletes both, says so, and registers one complete version."""
    paths = copy_tiny(tiny_data, tmp_path)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    name = "s2s-leftovers"
    run = ["trainer.max_epochs=1", f"logger.tracking_uri={uri}", "logger.experiment_name=leftovers",
           f"logger.registered_model_name={name}"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}

    def killed_at(target: str) -> None:
        result = subprocess.run(
            [sys.executable, str(HELPERS / "fail_at.py"), "--kill", target, "src/train.py", *paths, *run],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == -signal.SIGKILL and f"killed at {target}" in result.stderr, result.stderr[-3000:]

    client = MlflowClient(tracking_uri=uri)
    killed_at("mlflow.tracking.client:MlflowClient.log_model_artifacts")  # inside log_model
    run_id = json.loads((tmp_path / "checkpoints/run.json").read_text())["run_id"]
    assert client.get_run(run_id).info.status == "RUNNING", "a run killed in its export did not finish"
    experiment = client.get_experiment_by_name("leftovers").experiment_id
    [pending] = client.search_logged_models([experiment])
    assert pending.status == "PENDING"
    killed_at("s2s.tracking.registry:describe_version")  # registered, not described
    [untagged] = client.search_model_versions(f"name = '{name}'")
    assert not untagged.description and "model" not in untagged.tags
    assert pending.model_id not in {m.model_id for m in client.search_logged_models([experiment])}, "deleted"

    result = run_script("train", *paths, *run)
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "killed export" in line]
    assert len(warnings) == 1 and f"version {untagged.version}" in warnings[0], warnings
    [version] = client.search_model_versions(f"name = '{name}'")
    assert version.version != untagged.version and version.description and version.tags["model"] == "bilstm_attn"
    [model] = client.search_logged_models([experiment])
    assert model.status == "READY" and version.source.endswith(model.model_id)
    assert not {k for k in [*model.tags, *version.tags] if k.startswith("s2s.export")}, "no mark left once complete"
    assert client.get_run(run_id).info.status == "FINISHED"

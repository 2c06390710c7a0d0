"""The trained translator the MLflow way: one tiny training, then every way a user reaches the model
(pyfunc, the Model Registry, translate.py with model URIs, ``mlflow models serve``), the run's
params (each key once), system metrics and dataset inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from s2s.tracking.mlflow_store import run_params

from conftest import ROOT, copy_tiny, run_script
from helpers.processes import free_port, stop

pytestmark = pytest.mark.slow

NAME = "s2s-test-model"
LINES = ["A man is riding a bicycle.", "", "Two dogs play in the snow."]


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("mlflow_model")
    db = f"sqlite:///{base}/mlflow.db"
    paths = copy_tiny(tiny_data, base)
    tracking = [f"logger.tracking_uri={db}", "logger.experiment_name=model-test"]
    run_script(
        "train", *paths, *tracking, f"logger.registered_model_name={NAME}", "trainer.max_epochs=2",
        env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"},
    )
    run_id = json.loads((base / "reports/train_run.json").read_text())["run_id"]
    return {"base": base, "db": db, "paths": paths, "tracking": tracking, "run_id": run_id}


def translate(t: dict, *overrides: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "src/translate.py", *t["paths"], *t["tracking"], *overrides],
        input="".join(line + "\n" for line in LINES), cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def test_every_param_is_logged_once_with_dots(trained: dict, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=trained["db"])
    params = client.get_run(trained["run_id"]).data.params
    spellings: dict[str, list[str]] = {}
    for key in params:
        spellings.setdefault(key.replace("/", "."), []).append(key)
    assert not {k: v for k, v in spellings.items() if len(v) > 1}, "a key logged in two spellings"
    config = OmegaConf.load(client.download_artifacts(trained["run_id"], "config.yaml", str(tmp_path)))
    expected = set(run_params(OmegaConf.to_container(config, resolve=True))) | {"parameters"}
    assert set(params) == expected, (set(params) - expected, expected - set(params))


def test_pyfunc_model_translates_like_translate_py(trained: dict) -> None:
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(trained["db"])
    uri = f"runs:/{trained['run_id']}/model"
    model = mlflow.pyfunc.load_model(uri)
    assert model.predict(pd.DataFrame({"text": LINES})) == translate(trained)
    assert model.predict(pd.DataFrame({"text": LINES}), params={"beam_size": 2, "alpha": 0.6}) == translate(
        trained, "decode.beam_size=2", "decode.length_penalty=0.6"
    )
    # what the MLmodel declares: signature with the decoding options as params, input example, requirements
    local = Path(mlflow.artifacts.download_artifacts(uri))
    mlmodel = yaml.safe_load((local / "MLmodel").read_text())
    params = {p["name"]: p for p in json.loads(mlmodel["signature"]["params"])}
    assert set(params) == {"beam_size", "max_len_a", "max_len_b", "alpha"} and params["beam_size"]["default"] == 5
    assert json.loads(mlmodel["signature"]["inputs"]) == [{"type": "string", "name": "text", "required": True}]
    assert mlmodel["saved_input_example_info"]
    requirements = (local / "requirements.txt").read_text()
    assert "torch" in requirements and "sentencepiece" in requirements
    assert {p.name for p in (local / "artifacts").iterdir()} == {"model.pt", "spm.model", "translator.json"}


def test_registered_model_and_translate_uris(trained: dict) -> None:
    client = MlflowClient(tracking_uri=trained["db"])
    version = client.get_model_version_by_alias(NAME, "champion")
    assert version.run_id == trained["run_id"]
    assert float(version.tags["val_bleu"]) >= 0
    expected = translate(trained)
    assert translate(trained, f"translate.model=models:/{NAME}@champion") == expected
    assert translate(trained, f"translate.model=runs:/{trained['run_id']}/model") == expected
    assert translate(trained, f"translate.model={trained['base']}/models") == expected
    missing = subprocess.run(
        [sys.executable, "src/translate.py", *trained["paths"], *trained["tracking"], "translate.model=models:/nope@x"],
        input="a\n", cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: translate.model=models:/nope@x")
    assert "Traceback" not in missing.stderr


def test_mlflow_models_serve_answers_invocations(trained: dict) -> None:
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained["db"]}
    body = json.dumps({"dataframe_split": {"columns": ["text"], "data": [[line] for line in LINES]},
                       "params": {"beam_size": 2}}).encode()
    answer = None
    for _attempt in range(3):  # another process may take the free port first: the server then exits
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            cwd=trained["base"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while proc.poll() is None and time.monotonic() < deadline:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    time.sleep(0.2)  # poll until the server answers (deadline above)
            if proc.poll() is None and time.monotonic() < deadline:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "application/json"}
                )
                with urllib.request.urlopen(request, timeout=120) as response:
                    answer = json.loads(response.read())
                break
        finally:
            stop(proc)
    assert answer is not None, "mlflow models serve never answered"
    assert answer["predictions"] == translate(trained, "decode.beam_size=2")


def test_system_metrics_and_dataset_inputs(trained: dict) -> None:
    client = MlflowClient(tracking_uri=trained["db"])
    run = client.get_run(trained["run_id"])
    assert any(k.startswith("system/cpu_utilization") for k in run.data.metrics), sorted(run.data.metrics)
    inputs = {
        d.dataset.name: (d.dataset.digest, {t.key: t.value for t in d.tags}) for d in run.inputs.dataset_inputs
    }
    assert set(inputs) == {"multi30k-train", "multi30k-valid"}
    assert inputs["multi30k-train"][1]["mlflow.data.context"] == "training"
    assert inputs["multi30k-valid"][1]["mlflow.data.context"] == "validation"
    assert all(len(digest) == 32 for digest, _ in inputs.values())

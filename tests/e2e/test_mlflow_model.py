"""The trained translator the MLflow way: one tiny training, then every way a user reaches the model
(pyfunc, the Model Registry, translate.py with model URIs, ``mlflow models serve``), the run's
params (each key once), system metrics and dataset inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from s2s.tracking.runs import run_params

from conftest import ROOT, TEST_DATA, copy_tiny, run_script
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
    result = run_script(
        "train", *paths, *tracking, f"logger.registered_model_name={NAME}", "trainer.max_epochs=2",
        env={"MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1"},
    )
    run_id = json.loads((base / "reports/train_run.json").read_text())["run_id"]
    return {
        "base": base, "db": db, "paths": paths, "tracking": tracking, "run_id": run_id,
        "console": result.stdout + result.stderr,
    }  # fmt: skip


def translate_run(t: dict, *overrides: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "src/translate.py", *t["paths"], *t["tracking"], *overrides],
        input="".join(line + "\n" for line in LINES), cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def translate(t: dict, *overrides: str) -> list[str]:
    return translate_run(t, *overrides).stdout.splitlines()


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


# what a newcomer reads as trouble on every training and every translate from the registry (issue 34, item 14)
NOISE = {
    "MLflow's warning about a pickled model": "CloudPickle",
    "MLflow's artifact progress bars": "Downloading artifacts",
}
# what training needs and translating does not: never a served model's requirement, never imported by it
TRAINING_ONLY = {"dvc", "dvclive", "pytorch-lightning", "matplotlib", "sacrebleu", "sacremoses"}


def test_the_model_is_logged_as_code_without_noise(trained: dict) -> None:
    """MLflow's models-from-code: the model is a code file (no pickled object, no CloudPickle
    warning on every training), and logging it prints no progress bars (issue 34, items 13, 14)."""
    import mlflow

    found = {what: [line for line in trained["console"].splitlines() if text in line] for what, text in NOISE.items()}
    assert not {what: lines for what, lines in found.items() if lines}
    mlflow.set_tracking_uri(trained["db"])
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{trained['run_id']}/model"))
    pyfunc = yaml.safe_load((local / "MLmodel").read_text())["flavors"]["python_function"]
    assert pyfunc.get("model_code_path", "").endswith("translator_model.py"), pyfunc
    assert "python_model" not in pyfunc and not list(local.glob("python_model.pkl*"))


def test_the_model_requires_what_translating_needs_only(trained: dict) -> None:
    """Its requirements are inference's: exactly the project's dependencies that a fresh process
    imports to load the model and translate (torch, SentencePiece, Hydra, which builds the model,
    NumPy, MLflow), without DVC, DVCLive, Lightning, matplotlib or the scorers (issue 34, item 13)."""
    import mlflow
    from packaging.requirements import Requirement

    mlflow.set_tracking_uri(trained["db"])
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/1"))
    lines = [x for x in (local / "requirements.txt").read_text().splitlines() if x and not x.startswith("#")]
    required = {Requirement(x).name.lower() for x in lines}
    script = (
        "import sys, importlib.metadata, mlflow\n"
        f"m = mlflow.pyfunc.load_model({str(local)!r})\n"
        "m.predict({'text': ['A dog runs.']})\n"
        "names = importlib.metadata.packages_distributions()\n"
        "print(' '.join(sorted({d.lower() for m in list(sys.modules) for d in names.get(m.split('.')[0], [])})))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # MLflow puts the model's own package first
    result = subprocess.run([sys.executable, "-c", script], cwd=trained["base"], env=env, capture_output=True,
                            text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    imported = set(result.stdout.split())
    with open(ROOT / "pyproject.toml", "rb") as fh:
        ours = {Requirement(d).name.lower() for d in tomllib.load(fh)["project"]["dependencies"]}
    assert required == imported & ours, (sorted(required), sorted(imported & ours))
    assert not required & TRAINING_ONLY and {"mlflow", "torch", "sentencepiece", "numpy"} <= required


def test_translate_from_the_registry_prints_no_progress_bars(trained: dict) -> None:
    result = translate_run(trained, f"translate.model=models:/{NAME}/1")
    assert "Downloading artifacts" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert result.stdout.splitlines() == translate(trained)


def test_registered_model_and_translate_uris(trained: dict) -> None:
    client = MlflowClient(tracking_uri=trained["db"])
    version = client.get_model_version(NAME, "1")
    assert version.run_id == trained["run_id"]
    bleu = version.tags["val_bleu"]
    assert bleu == f"{float(bleu):.2f}", "the score as the console prints it"
    assert {"data", "direction", "preset", "validation_digest", "s2s.validation_key"} <= set(version.tags)
    assert version.tags["preset"] == "tiny" and version.tags["direction"] == "en->de"
    assert version.description and bleu in version.description
    aliases = client.get_registered_model(NAME).aliases
    # a 2-epoch tiny model may still translate everything as empty (BLEU 0.00): never the champion
    assert aliases == ({"champion": "1"} if float(bleu) > 0 else {}), aliases
    expected = translate(trained)
    if float(bleu) > 0:
        assert translate(trained, f"translate.model=models:/{NAME}@champion") == expected
    assert translate(trained, f"translate.model=models:/{NAME}/1") == expected
    assert translate(trained, f"translate.model=runs:/{trained['run_id']}/model") == expected
    assert translate(trained, f"translate.model={trained['base']}/models") == expected
    missing = subprocess.run(
        [sys.executable, "src/translate.py", *trained["paths"], *trained["tracking"], "translate.model=models:/nope@x"],
        input="a\n", cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert missing.returncode == 2 and missing.stderr.startswith("error: translate.model=models:/nope@x")
    assert "Traceback" not in missing.stderr


def start_server(model_uri: str, cwd: Path, env: dict[str, str]) -> tuple[subprocess.Popen, int]:
    """``mlflow models serve`` on 127.0.0.1 and a free port, once it answers /ping (a deadline, no fixed sleep).

    The served process imports this checkout's ``s2s`` (PYTHONPATH), as the model's own copy would."""
    env = {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), env.get("PYTHONPATH")])),
        # MLflow starts `uvicorn` by name: the one beside this interpreter, also from an unactivated venv
        "PATH": os.pathsep.join(filter(None, [str(Path(sys.executable).parent), env.get("PATH")])),
    }
    for _attempt in range(3):  # another process may take the free port first: the server then exits
        port = free_port()
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri,
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
                    if response.status == 200:
                        return proc, port
            except OSError:
                time.sleep(0.2)  # poll until the server answers (deadline above)
        stop(proc)
    pytest.fail(f"mlflow models serve -m {model_uri} never answered")


def invoke(port: int, body: dict | bytes, timeout: float = 300) -> tuple[int, dict]:
    """POST /invocations: (HTTP status, the JSON answer)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=data, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def served(trained: dict):
    """The registered version served by ``mlflow models serve`` for this module's tests (started once)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained["db"]}
    proc, port = start_server(f"models:/{NAME}/1", trained["base"], env)
    try:
        yield port
    finally:
        stop(proc)


def test_mlflow_models_serve_answers_invocations(trained: dict, served: int) -> None:
    body = {"dataframe_split": {"columns": ["text"], "data": [[line] for line in LINES]}, "params": {"beam_size": 2}}
    status, answer = invoke(served, body)
    assert status == 200, answer
    assert answer["predictions"] == translate(trained, "decode.beam_size=2")


# every body /invocations documents for a one-column text model (issue 34, item 1)
BODIES = {
    "dataframe_split": {"dataframe_split": {"columns": ["text"], "data": [[line] for line in LINES]}},
    "dataframe_split_index": {
        "dataframe_split": {"index": list(range(len(LINES))), "columns": ["text"], "data": [[x] for x in LINES]}
    },
    "dataframe_records": {"dataframe_records": [{"text": line} for line in LINES]},
    "inputs_dict_of_lists": {"inputs": {"text": LINES}},
    "inputs_records": {"inputs": [{"text": line} for line in LINES]},
    "inputs_list": {"inputs": LINES},
}


@pytest.mark.parametrize("form", list(BODIES))
def test_every_invocations_body_gives_one_translation_per_line(trained: dict, served: int, form: str) -> None:
    status, answer = invoke(served, BODIES[form])
    assert status == 200, answer
    assert answer["predictions"] == translate(trained), form


def test_every_pyfunc_input_form_gives_one_translation_per_line(trained: dict) -> None:
    """The forms the model's docstring and the README show: a DataFrame, a dict of lists."""
    import mlflow.pyfunc
    import pandas as pd

    mlflow.set_tracking_uri(trained["db"])
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/1")
    expected = translate(trained)
    assert model.predict(pd.DataFrame({"text": LINES})) == expected
    assert model.predict({"text": LINES}) == expected  # not the translation of "['A man ...', '', ...]"
    assert model.predict({"text": LINES[0]}) == expected[:1]  # one sentence as a dict of one string
    with pytest.raises(MlflowException, match="text"):  # not in the docstring: the signature names the column
        model.predict(LINES)


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


HOSTILE = [{"max_len_b": 1_000_000_000}, {"beam_size": 1000}, {"beam_size": 0}, {"beam_size": -3},
           {"max_len_a": -1.0}, {"max_len_b": -5}]


@pytest.mark.parametrize("params", HOSTILE, ids=[str(p) for p in HOSTILE])
def test_a_hostile_request_gets_400_in_one_line(served: int, params: dict) -> None:
    body = {"dataframe_split": {"columns": ["text"], "data": [[line] for line in LINES]}, "params": params}
    status, answer = invoke(served, body, timeout=60)
    assert status == 400, answer
    assert "\n" not in answer["message"] and "stack_trace" not in answer, answer
    assert answer["message"].startswith(next(iter(params)) + "="), answer


def test_the_loaded_model_computes_with_the_runs_numerics(trained: dict) -> None:
    """A fresh process (as the server's worker) that loads the model decodes on the AVX2 kernels,
    deterministically, like translate.py (it decoded on native AVX-512 kernels before)."""
    script = (
        "import mlflow, torch\n"
        f"m = mlflow.pyfunc.load_model('models:/{NAME}/1')\n"
        "m.predict({'text': ['A dog runs.']})\n"
        "print(torch.backends.cpu.get_cpu_capability(), torch.are_deterministic_algorithms_enabled())\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained["db"], "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run([sys.executable, "-c", script], cwd=trained["base"], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split()[-2:] == ["AVX2", "True"], result.stdout


# --- the keys a tiny pipeline writes (issue 36, item 4) ---
# Last in this module: it evaluates the trained model, which adds metrics and child runs to its run.

RUN_KEYS = TEST_DATA / "mlflow_run_keys.json"
# keys that come and go with the machine or the checkout, not with the code: the diff hash of a
# dirty checkout, MLflow's own git branch (none on a detached HEAD) and remote URL (none without a
# remote), the DVC experiment (under `dvc exp run` only), the numerics environment variables that
# are set, system metrics (GPU ones only on a GPU machine)
VARYING_TAGS = ("git_diff_sha256", "mlflow.source.git.branch", "mlflow.source.git.repoURL", "dvc.", "provenance.env.")
VARYING_METRICS = ("system/",)
# values that do not vary, checked beside the keys
STABLE_TAGS = {"train_run": ("dataset", "model"), "registered_version": ("data", "direction", "model", "preset")}


def run_keys(run: Any) -> dict[str, Any]:
    return {
        "params": sorted(run.data.params),
        "tags": sorted(k for k in run.data.tags if not k.startswith(VARYING_TAGS)),
        "metrics": sorted(k for k in run.data.metrics if not k.startswith(VARYING_METRICS)),
    }


def written_keys(trained: dict) -> dict[str, Any]:
    """What the tiny pipeline (train, then evaluate) wrote to MLflow: the keys, and a few stable values."""
    run_script("evaluate", *trained["paths"], *trained["tracking"], "decode=greedy")
    client = MlflowClient(tracking_uri=trained["db"])
    run = client.get_run(trained["run_id"])
    children = client.search_runs([run.info.experiment_id], f"tags.mlflow.parentRunId = '{trained['run_id']}'")
    version = client.get_model_version(NAME, "1")
    return {
        "experiment": {"tags": sorted(client.get_experiment(run.info.experiment_id).tags)},
        "train_run": {
            **run_keys(run),
            "values": {k: run.data.tags[k] for k in STABLE_TAGS["train_run"]},
            "dataset_inputs": sorted(
                [d.dataset.name, {t.key: t.value for t in d.tags}.get("mlflow.data.context")]
                for d in run.inputs.dataset_inputs
            ),
        },
        "evaluation_runs": {c.data.tags["decode"]: run_keys(c) for c in children},
        "registered_version": {
            "tags": sorted(version.tags),
            "values": {k: version.tags[k] for k in STABLE_TAGS["registered_version"]},
        },
    }


def test_the_runs_keep_their_params_tags_and_metrics(trained: dict) -> None:
    """The params, tags and metrics keys of the runs and the registered version, as
    ``tests/data/mlflow_run_keys.json`` recorded them before the tracking package was split by
    concern (issue 36): a refactor of ``s2s.tracking`` must not rename, add or lose one.
    ``S2S_RECORD_MLFLOW_KEYS=1`` rewrites the file: only for a deliberate change."""
    seen = written_keys(trained)
    if os.environ.get("S2S_RECORD_MLFLOW_KEYS") == "1":
        RUN_KEYS.write_text(json.dumps(seen, indent=1, sort_keys=True) + "\n")
    recorded = json.loads(RUN_KEYS.read_text())
    assert differences(seen, recorded) == [], "new (+) and lost (-) keys"


def differences(seen: Any, recorded: Any, where: str = "") -> list[str]:
    """Where two recordings differ: ``+where: key`` for a key only seen now, ``-where: key`` for a lost one."""
    if isinstance(seen, dict) and isinstance(recorded, dict):
        found = [f"+{where}: {k}" for k in sorted(set(seen) - set(recorded))]
        found += [f"-{where}: {k}" for k in sorted(set(recorded) - set(seen))]
        for k in sorted(set(seen) & set(recorded)):
            found += differences(seen[k], recorded[k], f"{where}/{k}")
        return found
    if isinstance(seen, list) and isinstance(recorded, list) and all(isinstance(x, str) for x in seen + recorded):
        return [f"+{where}: {k}" for k in sorted(set(seen) - set(recorded))] + [
            f"-{where}: {k}" for k in sorted(set(recorded) - set(seen))
        ]
    return [] if seen == recorded else [f"~{where}: {seen!r} (recorded {recorded!r})"]

"""The real stage scripts end on bad input with a clear message and no traceback.

The three scripts are started together (each spends most of its few seconds importing) to keep
this file fast on a small machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stages")
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    env.pop("S2S_MIRROR", None)
    missing = tmp / "no-such-mirror"
    cases = {
        "mirror": [f"data.mirror={missing}", f"paths.raw_dir={tmp}/raw"],
        "key": ["data.nonexistent_key=1", f"paths.raw_dir={tmp}/raw"],
        "group": ["model=nope", f"paths.raw_dir={tmp}/raw"],
    }
    procs = {
        name: subprocess.Popen(
            [sys.executable, "src/download.py", *args, f"hydra.run.dir={tmp}/hydra-{name}"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, args in cases.items()
    }
    results = {}
    for name, proc in procs.items():
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for p in procs.values():
                p.kill()
            raise
        results[name] = (proc.returncode, out, err)
    return tmp, missing, results


def test_missing_mirror_is_one_clean_error_line(runs):
    tmp, missing, results = runs
    code, _, err = results["mirror"]
    assert code == 2, err
    assert "Traceback" not in err
    error_lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, err
    assert str(missing) in error_lines[0] and "data.mirror" in error_lines[0]
    assert not (tmp / "raw").exists() and not (tmp / ".raw.partial").exists()


def test_unknown_config_key(runs):
    _, _, results = runs
    code, _, err = results["key"]
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err  # Hydra's own error, in one line
    assert "nonexistent_key" in err


def test_unknown_group_option(runs):
    _, _, results = runs
    code, _, err = results["group"]
    assert code == 2, err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "model/nope" in err


# --- every option checked before the stage touches anything ----------------------------------------

BAD_OPTIONS = [
    ("train", "optim.name=sgd"),
    ("train", "trainer.precision=bogus"),
    ("train", "optim.lr=-1"),
    ("train", "trainer.max_epochs=abc"),
    ("train", "train.batch.max_sentences=0"),
    ("translate", "decode.beam_size=0"),
    ("translate", "decode.n_best=10"),
    ("evaluate", "decode.n_best=10"),
    ("preprocess", "preprocess.spm.vocab_size=-5"),
    ("preprocess", "data.max_eval_pairs=-5"),
    ("preprocess", "data.max_train_pairs=0"),
    ("preprocess", "preprocess.noise.replace_clean=true"),
    ("download", "data.timeout_s=-1"),
    # unbounded requests: hours of search and gigabytes before anything is written
    ("translate", "decode.max_len_b=100000000"),
    ("translate", "decode.max_len_a=1e9"),
    ("translate", "decode.beam_size=100000"),
    ("evaluate", "decode.beam_size=1000"),
    ("evaluate", "decode.max_len_b=100000000"),
    ("translate", "decode.max_len_b=0 decode.max_len_a=0"),  # an empty output for every line
    ("train", "train.val_max_len_b=100000000"),
    ("train", "model.init_scale=3e38"),
    ("train", "trainer.accelerator=tpu"),
]


@pytest.mark.parametrize(("stage", "override"), BAD_OPTIONS, ids=[f"{s}-{o}" for s, o in BAD_OPTIONS])
def test_bad_option_fails_first_with_one_line(tmp_path: Path, stage: str, override: str) -> None:
    """The real script exits 2 with one line naming the option, before it touches any output: an
    unfinished run's resume state, an existing translation and the data folders stay as they were."""
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "last.ckpt").write_bytes(b"resume state of a killed run")
    (ckpt / "fingerprint").write_text("0123456789abcdef\n")
    out = tmp_path / "out.txt"
    out.write_text("an earlier translation\n")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in (ckpt / "last.ckpt", ckpt / "fingerprint", out)}
    paths = [
        f"paths.raw_dir={tmp_path}/raw",
        f"paths.prepared_dir={tmp_path}/prepared",
        f"paths.checkpoint_dir={ckpt}",
        f"paths.model_dir={tmp_path}/models",
        f"paths.reports_dir={tmp_path}/reports",
        f"hydra.run.dir={tmp_path}/hydra",
        "logger=none",
    ]
    if stage == "translate":
        paths.append(f"translate.output={out}")
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, f"src/{stage}.py", *paths, *override.split(" ")],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    assert errors[0].startswith(f"error: {override.split('=')[0]}="), errors[0]
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before} == before
    for made in ("raw", "prepared", "models", "reports"):
        assert not (tmp_path / made).exists(), made


# --- output folders that cannot be written are refused before the work -----------------------------

@pytest.mark.parametrize(
    ("stage", "option"),
    [("train", "paths.model_dir"), ("train", "paths.reports_dir"), ("train", "paths.checkpoint_dir"),
     ("evaluate", "paths.reports_dir")],
)
def test_an_unwritable_output_folder_is_one_line_before_the_work(tmp_path: Path, stage: str, option: str) -> None:
    """A folder below a regular file cannot be created, even by root (for whom chmod stops nothing)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder\n")
    paths = {
        "paths.prepared_dir": f"{tmp_path}/prepared",
        "paths.checkpoint_dir": f"{tmp_path}/checkpoints",
        "paths.model_dir": f"{tmp_path}/models",
        "paths.reports_dir": f"{tmp_path}/reports",
        option: f"{blocker}/sub",
    }
    env = dict(os.environ)
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, f"src/{stage}.py", *(f"{k}={v}" for k, v in paths.items()),
         f"hydra.run.dir={tmp_path}/hydra", "logger=none"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {option}="), result.stderr[-3000:]
    assert "not a folder" in errors[0]

"""The real stage scripts end on bad input with a clear message and no traceback.

The three scripts are started together (each spends most of its few seconds importing) to keep
this file fast on a small machine.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
    assert code != 0
    assert "nonexistent_key" in err
    assert "Traceback" not in err


def test_unknown_group_option(runs):
    _, _, results = runs
    code, _, err = results["group"]
    assert code != 0
    assert "nope" in err
    assert "Traceback" not in err

"""The suite's own plugin ``helpers/process_state.py``: a test that applies the numerics in process
(as ``run_training`` does) leaves nothing behind for the next test of the same worker."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.paths import ROOT

TESTS = Path(__file__).resolve().parents[1]

TWO_TESTS = """
import os
import torch
from s2s.common.numerics import apply_numerics


def test_a_applies_portable_numerics():
    apply_numerics("portable", 1)
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2"
    assert torch.are_deterministic_algorithms_enabled()


def test_b_finds_the_state_it_would_have_alone():
    assert "ATEN_CPU_CAPABILITY" not in os.environ, "leaked"
    assert "MKL_CBWR" not in os.environ, "leaked"
    assert not torch.are_deterministic_algorithms_enabled(), "leaked"
"""


def run_pair(tmp_path: Path, *plugin: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_pair.py").write_text(TWO_TESTS)
    env = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA")}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), str(ROOT / "src")])
    options = ["-q", "-p", "no:cacheprovider", "-p", "no:xdist", "--rootdir", str(tmp_path), "-c", os.devnull]
    command = [sys.executable, "-m", "pytest", *options, *plugin, str(tmp_path / "test_pair.py")]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("with_plugin", [True, False], ids=["restored", "leaks-without-it"])
def test_a_later_test_does_not_see_the_numerics_an_earlier_one_applied(tmp_path: Path, with_plugin: bool) -> None:
    result = run_pair(tmp_path, *(["-p", "helpers.process_state"] if with_plugin else []))
    if with_plugin:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "2 passed" in result.stdout
    else:  # the control: without the plugin the second test fails, so the first one's state did leak
        assert result.returncode == 1, result.stdout + result.stderr
        assert "1 failed, 1 passed" in result.stdout and "leaked" in result.stdout

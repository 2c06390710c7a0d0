"""s2s.common.numerics: a process runs the numerics it was started with, or refuses (issue 35, item 3).

``python src/train.py -m numerics=portable,fast`` runs its jobs in one process: the fast job
inherited the portable job's AVX2 capability, MKL branch and thread count, and trained under the
label ``fast`` with weights of neither mode. Applied in a subprocess: pinning numerics in the
test process would change every later test's kernels."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src"


def _apply(*calls: str) -> subprocess.CompletedProcess[str]:
    code = "from s2s.common.numerics import apply_numerics\n" + "\n".join(f"apply_numerics({c})" for c in calls)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
        env.pop(key, None)
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    "second",
    ["'fast'", "'portable', 1", "'portable', None, 'COMPATIBLE'"],
    ids=["fast-after-portable", "threads-pinned-after-default", "other-mkl-branch"],
)
def test_other_numerics_in_the_same_process_are_refused(second: str) -> None:
    result = _apply("'portable'", second)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "InputError" in last and "already runs numerics" in last and "one process per" in last


def test_the_same_numerics_again_are_fine() -> None:
    result = _apply("'portable'", "'portable'")
    assert result.returncode == 0, result.stderr[-2000:]

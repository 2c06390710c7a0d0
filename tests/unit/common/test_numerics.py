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


# issue 35, item 8: provenance records what ran, not what was asked


def test_evaluation_provenance_records_the_resolved_device_and_autocast_dtype() -> None:
    import torch
    from omegaconf import OmegaConf

    from s2s.evaluation.run import _provenance  # the evaluate stage resolves its device, then records it

    cfg = OmegaConf.create({"numerics": {"mode": "portable"}, "decode": {"device": "auto", "precision": "auto"}})
    prov = _provenance(cfg)
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert prov["device"] == expected and prov["device_setting"] == "auto"
    assert prov["precision"] == "auto"
    assert prov["autocast_dtype"] in ("float32", "bfloat16")
    assert set(prov["tf32"]) == {"cuda_matmul", "cudnn", "float32_matmul_precision"}
    assert ("gpu" in prov) and (prov["gpu"] is None) == (not torch.cuda.is_available())


def test_training_provenance_records_the_device_lightning_chose_and_its_autocast() -> None:
    import torch

    from s2s.common.numerics import stage_provenance

    cfg = {"numerics": {"mode": "fast"}, "trainer": {"accelerator": "auto", "precision": "bf16-mixed"}}
    prov = stage_provenance(cfg, "train", device=torch.device("cpu"))
    assert prov["device"] == "cpu" and prov["device_setting"] == "auto"
    assert prov["autocast_dtype"] == "bfloat16" and prov["precision"] == "bf16-mixed"
    cfg["trainer"]["precision"] = "32-true"
    assert stage_provenance(cfg, "train", device=torch.device("cpu"))["autocast_dtype"] == "float32"

"""What an accelerator run needs is set before the first tensor op, without a GPU to check it on.

cuBLAS raises at the first deterministic GEMM without CUBLAS_WORKSPACE_CONFIG, and evaluate and
translate (not only training) run deterministic algorithms; TF32 would silently make "32-true" a
10-bit-mantissa matmul. Each check runs in a fresh process, as a stage does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from s2s.common.options import check_config

from conftest import ROOT, compose_config

PROBE = (
    "import json, os, sys; from s2s.common.numerics import apply_numerics, provenance; "
    "apply_numerics(sys.argv[1], 1); import torch; "
    "p = provenance(sys.argv[1], '32'); "
    "print(json.dumps({'cublas': os.environ.get('CUBLAS_WORKSPACE_CONFIG'), "
    "'deterministic': torch.are_deterministic_algorithms_enabled(), 'tf32': p['tf32'], "
    "'env': p['env'].get('CUBLAS_WORKSPACE_CONFIG')}))"
)


def probe(mode: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "CUBLAS_WORKSPACE_CONFIG"}
    env["PYTHONPATH"] = str(ROOT / "src")
    result = subprocess.run([sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True,
                            timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout)


@pytest.mark.parametrize("mode", ["portable", "gpu"])
def test_deterministic_modes_set_the_cublas_workspace_and_turn_tf32_off(mode: str) -> None:
    got = probe(mode)
    assert got["cublas"] == ":4096:8" and got["env"] == ":4096:8"
    assert got["deterministic"] is True
    assert got["tf32"]["cuda_matmul"] is False and got["tf32"]["cudnn"] is False


def test_fast_mode_leaves_the_accelerator_on_its_fast_paths() -> None:
    got = probe("fast")
    assert got["cublas"] is None and got["deterministic"] is False


def test_numerics_gpu_is_bf16_mixed_and_deterministic_and_passes_the_option_rules() -> None:
    cfg = compose_config(["trainer=gpu", "numerics=gpu"])
    assert cfg.numerics.mode == "gpu" and cfg.trainer.precision == "bf16-mixed" and cfg.trainer.deterministic
    assert cfg.decode.precision == "bf16"
    assert check_config(cfg, ["trainer", "numerics", "decode"]) == []

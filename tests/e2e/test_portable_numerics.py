"""Portable numerics: the same bytes under emulated CPUs and thread counts; fast mode differs.

Capping MKL, ATen and oneDNN from the outer environment makes this machine run the kernels another
CPU would (an AVX2-only EPYC, an AVX-512 Xeon without AMX, this CPU natively). Portable mode must
override those caps and give byte-identical metrics, translations and weights under all of them,
at 1, 2 and 4 threads; the fast mode, under the same caps, must give other weights (else this test
could not fail). The cross-machine half is `make verify` against the committed reference.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from s2s.common.io import InputError
from s2s.common.tiny_pipeline import CHECKED, run_tiny_pipeline
from s2s.common.verification import differences, load_reference

from conftest import ROOT, SHORT_TRAINING

pytestmark = pytest.mark.slow

CAPS = {  # the outer environment that emulates a CPU
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"},
    "avx512": {
        "ATEN_CPU_CAPABILITY": "avx512",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
    },
}
NUMERIC_ENV = ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR", "OMP_NUM_THREADS")
OVERRIDES = ["preset=tiny", "logger=none", SHORT_TRAINING]


def emulated(cpu: str, threads: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in NUMERIC_ENV}
    # more threads than cores: idle OpenMP threads sleep instead of spinning (the bits are the same;
    # spinning threads on a busy 2-core machine slowed a tiny training past half an hour)
    return {**env, **CAPS[cpu], "OMP_NUM_THREADS": str(threads), "OMP_WAIT_POLICY": "PASSIVE"}


def run(
    tiny_data: Path, base: Path, mode: str, cpu: str, threads: int, stages=("train", "evaluate"), extra=()
) -> dict:
    shutil.copytree(tiny_data / "prepared", base / "data" / "prepared")
    return run_tiny_pipeline(base, [*OVERRIDES, f"numerics={mode}", *extra], emulated(cpu, threads), stages)


@pytest.fixture(scope="module")
def portable_runs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    # the thread count varies too, and the bits must not depend on it: the default
    # numerics.threads=null (OMP_NUM_THREADS, at most the cores), and 4 threads asked for explicitly
    # (OMP_NUM_THREADS=4 alone gives at most the physical cores: torch starts at MKL's count). At 4
    # threads the tiny preset's narrow GEMMs changed under MKL's AUTO branch (an AMD CPU) and an LSTM
    # on a batch of equal lengths under oneDNN, until MKL was held at 2 threads and oneDNN's LSTM at 1
    variants = {
        "native/1": ("native", 1, ()),
        "avx2/2": ("avx2", min(2, os.cpu_count() or 1), ()),
        "avx512/4": ("avx512", 1, ("numerics.threads=4",)),
    }
    out = {}
    for name, (cpu, threads, extra) in variants.items():
        base = tmp_path_factory.mktemp(f"portable-{cpu}")
        out[name] = (base, run(tiny_data, base, "portable", cpu, threads, extra=extra))
    return out


def test_portable_outputs_are_identical_under_every_emulated_cpu(portable_runs) -> None:
    (ref_name, (_, ref)), *others = portable_runs.items()
    assert set(ref) == set(CHECKED), f"missing outputs: {set(CHECKED) - set(ref)}"
    for name, (_, sums) in others:
        assert differences(ref, sums) == [], f"portable mode differs between {ref_name} and {name}"


def test_provenance_shows_the_pinned_kernels_whatever_the_outer_caps(portable_runs) -> None:
    for name, (base, _) in portable_runs.items():
        prov = json.loads((base / "reports/eval/report.json").read_text())["provenance"]
        assert prov["numerics"] == "portable" and prov["aten_cpu_capability"] == "AVX2", name
        assert prov["env"]["MKL_CBWR"] == "AVX2,STRICT" and prov["precision"] == "32"
        threads = {"native/1": 1, "avx2/2": min(2, os.cpu_count() or 1), "avx512/4": 4}[name]
        assert prov["threads"] == threads, name  # the threads really used
        assert prov["mkl_threads"] == min(threads, 2), name  # MKL's own count, held at 2
        assert prov["packages"]["sentencepiece"] and prov["packages"]["pytorch-lightning"]


def test_fast_mode_differs_under_the_same_caps(tiny_data: Path, tmp_path: Path) -> None:
    native = run(tiny_data, tmp_path / "native", "fast", "native", 1, stages=("train",))
    avx2 = run(tiny_data, tmp_path / "avx2", "fast", "avx2", 1, stages=("train",))
    assert native["models/model.pt"] != avx2["models/model.pt"], "fast mode gave the same weights on two CPUs"


def test_a_tensor_operation_before_the_pin_is_refused() -> None:
    code = (
        "import torch; torch.ones(3).exp();"  # the capability is fixed by this first operation
        "print(torch.backends.cpu.get_cpu_capability(), flush=True);"
        "from s2s.common.numerics import apply_numerics; apply_numerics('portable')"
    )
    env = {k: v for k, v in os.environ.items() if k not in NUMERIC_ENV}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "PYTHONPATH": str(ROOT / "src")},
        capture_output=True, text=True, timeout=120,
    )
    if result.stdout.strip() == "AVX2":  # a CPU whose native capability is AVX2: nothing to tell apart
        pytest.skip("this CPU's native ATen capability is AVX2")
    assert result.returncode != 0 and "ATen runs the" in result.stderr


@pytest.mark.parametrize(
    "override, option",
    [("trainer.precision=bf16-mixed", "trainer.precision"), ("decode.precision=bf16", "decode.precision"),
     ("trainer.deterministic=false", "trainer.deterministic"), ("numerics.mode=exact", "numerics.mode"),
     ("numerics.mkl_branch=COMPATIBLE", "numerics.threads")],
)
def test_settings_that_break_portability_are_refused_in_one_line(override: str, option: str) -> None:
    result = subprocess.run(
        [sys.executable, "src/train.py", override], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().startswith(f"error: {option}=") and len(result.stderr.strip().splitlines()) == 1


def test_a_broken_reference_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "ref.json"
    bad.write_text("{}")
    with pytest.raises(InputError, match="not a reference file"):
        load_reference(bad)
    result = subprocess.run(
        [sys.executable, "src/verify.py", "--reference", str(tmp_path / "missing.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and result.stderr.startswith("error: ") and "missing.json" in result.stderr



"""compare warns, one line per field, when the runs it compares were made under other numerics."""

from __future__ import annotations

from s2s.evaluation.compare.runs import Run, System, provenance_warnings

BASE = {"numerics": "portable", "torch": "2.13.0+cpu", "mkl": "2024.2", "onednn": "3.12.0", "precision": "32",
        "cpu": "AMD EPYC 7B13", "aten_cpu_capability": "AVX2", "threads": 1, "deterministic": True, "device": "cpu"}


def systems(a: dict | None, b: dict | None) -> list[System]:
    return [System("a", [Run("a[0] x", {}, a)]), System("b", [Run("b[0] y", {}, b)])]


def test_portable_runs_on_other_cpus_compare_without_a_warning() -> None:
    other = {**BASE, "cpu": "Intel(R) Xeon(R) Processor"}
    assert provenance_warnings(systems(BASE, other)) == []


def test_fast_runs_on_other_cpus_are_warned_about_once_per_field() -> None:
    fast = {**BASE, "numerics": "fast", "precision": "bf16-mixed", "aten_cpu_capability": "AVX512"}
    other = {**fast, "cpu": "Intel(R) Xeon(R) Processor", "aten_cpu_capability": "AVX2"}
    lines = provenance_warnings(systems(fast, other))
    assert [line.split(":")[0] for line in lines] == ["runs differ in cpu", "runs differ in aten_cpu_capability"]
    assert "AMD EPYC 7B13 (a[0] x)" in lines[0] and "(b[0] y)" in lines[0]


def test_library_versions_matter_even_in_portable_mode() -> None:
    lines = provenance_warnings(systems(BASE, {**BASE, "torch": "2.14.1+cpu"}))
    assert len(lines) == 1 and lines[0].startswith("runs differ in torch")


def test_a_portable_run_against_a_fast_one_is_warned_about() -> None:
    lines = provenance_warnings(systems(BASE, {**BASE, "numerics": "fast", "threads": 2}))
    assert [line.split(":")[0] for line in lines] == ["runs differ in numerics", "runs differ in threads"]


def test_a_run_without_provenance_is_named() -> None:
    lines = provenance_warnings(systems(BASE, None))
    assert lines == ["b[0] y: no provenance (reports/eval/report.json from an older evaluate)"]


def test_every_bit_deciding_package_and_the_mkl_branch_are_compared() -> None:
    with_packages = {**BASE, "env": {"MKL_CBWR": "AVX2,STRICT"},
                     "packages": {"numpy": "2.4.6", "sentencepiece": "0.2.3", "sacrebleu": "2.6.0"}}
    other = {**with_packages, "packages": {**with_packages["packages"], "numpy": "2.5.0"}}
    lines = provenance_warnings(systems(with_packages, other))
    assert len(lines) == 1 and lines[0].startswith("runs differ in packages.numpy: 2.4.6 (a[0] x); 2.5.0 (b[0] y)")
    compatible = {**with_packages, "env": {"MKL_CBWR": "COMPATIBLE"}}
    lines = provenance_warnings(systems(with_packages, compatible))
    assert len(lines) == 1 and lines[0].startswith("runs differ in env.MKL_CBWR")

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


# issue 35, item 7: compare counts a seed once


class _Files:
    """A run's files in memory: one test set, its translations given."""

    def __init__(self, label: str, hypotheses: list[str]):
        self.label = label
        self.identity = label  # another folder, another run id: identity alone cannot tell
        rows = ["direction\tsource\treference\thypothesis"]
        rows += [f"en-de\tsource {i}\treference {i}\t{h}" for i, h in enumerate(hypotheses)]
        self.files = {
            "reports/eval/metrics.json": '{"test_sets": {"t": {}}}',
            "reports/eval/translations/t.tsv": "\n".join(rows) + "\n",
        }

    def read_text(self, relpath: str) -> str | None:
        return self.files.get(relpath)


def test_two_runs_with_byte_identical_translations_are_one_seed_not_two() -> None:
    import pytest

    from s2s.common.io import InputError
    from s2s.evaluation.compare.runs import load_systems

    runs = {"seed1": _Files("seed1", ["a b", "c d"]), "copy": _Files("copy", ["a b", "c d"]),
            "seed2": _Files("seed2", ["a b", "c e"])}  # fmt: skip
    systems = load_systems([("x", ["seed1", "seed2"])], runs.__getitem__)
    assert len(systems[0].runs) == 2
    with pytest.raises(InputError) as err:
        load_systems([("x", ["seed1", "copy"])], runs.__getitem__)
    assert "\n" not in str(err.value) and "copy" in str(err.value) and "byte-identical" in str(err.value)
    # the same translations in two systems is a comparison (of a system with itself), not a seed counted twice
    assert len(load_systems([("x", ["seed1"]), ("y", ["copy"])], runs.__getitem__)) == 2


def test_runs_whose_weights_were_made_under_other_numerics_are_warned_about() -> None:
    """Issue 35, item 8: the evaluation's provenance alone says how the translations were decoded;
    the training's (recorded beside it) says how the weights were made."""
    a = {**BASE, "training": {**BASE, "numerics": "portable"}}
    b = {**BASE, "training": {**BASE, "numerics": "fast", "precision": "bf16-mixed"}}
    lines = provenance_warnings(systems(a, b))
    assert any(line.startswith("runs differ in training numerics") for line in lines), lines
    assert any("training precision" in line for line in lines), lines
    assert not provenance_warnings(systems(a, dict(a)))

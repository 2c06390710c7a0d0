"""s2s.common.verification: the committed reference, the files that differ, and which CPU fails CI."""

from __future__ import annotations

from s2s.common.verification import CHECKED, differences, load_reference, same_cpu


def test_the_committed_reference_names_its_cpu_and_every_checked_file() -> None:
    reference = load_reference()
    assert set(reference["files"]) == set(CHECKED)
    assert reference["machine"]["cpu"] and reference["overrides"]


def test_differences_name_each_file_that_differs() -> None:
    ref = {name: "a" * 64 for name in CHECKED}
    here = {**ref, "models/model.pt": "b" * 64}
    del here["reports/metrics.json"]
    assert differences(ref, here) == ["reports/metrics.json", "models/model.pt"]


def test_ci_fails_on_the_reference_cpu_only() -> None:
    xeon = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_flags": ["avx2", "avx512f", "amx_tile"]}
    assert same_cpu(xeon, dict(xeon))
    assert not same_cpu(xeon, {**xeon, "cpu_flags": ["avx2"]})  # a VM's generic name, another ISA
    assert not same_cpu(xeon, {"cpu": "AMD EPYC 7B13", "cpu_flags": ["avx2"]})

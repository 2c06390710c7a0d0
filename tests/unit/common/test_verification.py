"""s2s.common.verification: the committed records per candidate and CPU, what differs, which CPU fails CI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2s.common.io import InputError
from s2s.common.tiny_pipeline import CHECKED
from s2s.common.verification import (
    CANDIDATES,
    RECORDS,
    battery_path,
    cpu_slug,
    differences,
    first_differing_op,
    identical_where,
    load_reference,
    package_changes,
    references,
    same_cpu,
    thread_culprits,
)


def test_every_candidate_has_a_committed_reference_naming_its_cpu_packages_and_every_file() -> None:
    for name in CANDIDATES:
        refs = references(name)
        assert refs, f"no committed reference of {name} in {RECORDS}"
        for path, ref in refs:
            assert set(ref["files"]) == set(CHECKED), path
            assert ref["machine"]["cpu"] and ref["machine"]["vendor"] and ref["overrides"], path
            assert ref["machine"]["packages"]["torch"] and ref["machine"]["packages"]["numpy"], path
            assert path.name == f"tiny-{name}.{cpu_slug(ref['machine'])}.json"
            assert battery_path(ref["machine"]).is_file(), f"{path.name} has no op battery of its CPU"


def test_the_candidates_give_other_weights() -> None:
    """The fallback is a real alternative: if both gave the same bytes, recording both would be idle."""
    avx2, compatible = (dict(references(name)[0][1]["files"]) for name in ("portable-avx2", "portable-compatible"))
    assert avx2["data/prepared/spm.model"] == compatible["data/prepared/spm.model"]  # data is not numerics
    assert avx2["models/model.pt"] != compatible["models/model.pt"]


def test_recorded_batteries_show_the_thread_culprits_per_branch() -> None:
    """On the AVX2 branch, at 1, 2, 4 and 8 threads, only PyTorch's own softmax backward and LSTM on a
    padded batch (oneDNN's) and a multi-million-element full sum change with the thread count, and
    the models' softmax and LSTM calls do not (MKL held at 2 threads: the GEMMs neither); on
    COMPATIBLE, GEMMs change too."""
    for path in sorted(RECORDS.glob("ops.*.json")):
        settings = json.loads(path.read_text())["settings"]
        assert {"AVX2/1", "AVX2/2", "AVX2/4", "AVX2/8"} <= set(settings), path
        avx2 = thread_culprits(settings, "AVX2")
        ours = ("mm", "A^T", "s2s softmax", "linear", "bilstm", "lstm")
        assert not [op for op in avx2 if op.startswith(ours)], path
        assert "torch.softmax 64x30 grad 0" in avx2, path  # the culprit the models replace
        assert "nn.LSTM padded 64x30x256 (oneDNN) grad 0" in avx2, path  # the one they run at one thread
        assert any(op.startswith("mm ") for op in thread_culprits(settings, "COMPATIBLE")), path


def test_differences_name_each_file_that_differs() -> None:
    ref = {name: "a" * 64 for name in CHECKED}
    here = {**ref, "models/model.pt": "b" * 64}
    del here["reports/metrics.json"]
    assert differences(ref, here) == ["reports/metrics.json", "models/model.pt"]


def test_the_first_differing_op_and_the_changed_packages_are_named() -> None:
    assert first_differing_op({"mm a": "1", "mm b": "2", "sum": "3"}, {"mm a": "1", "mm b": "9", "sum": "8"}) == "mm b"
    assert first_differing_op({"mm a": "1"}, {"mm a": "1"}) is None
    old, new = {"packages": {"numpy": "2.4.6", "torch": "2.13.0"}}, {"packages": {"numpy": "2.5.0", "torch": "2.13.0"}}
    assert package_changes(old, new) == ["numpy 2.4.6 -> 2.5.0"]


def test_cpu_slug_is_vendor_and_widest_isa() -> None:
    assert cpu_slug({"vendor": "GenuineIntel", "cpu_flags": ["avx2", "avx512f", "amx_tile"]}) == "intel-amx"
    assert cpu_slug({"vendor": "AuthenticAMD", "cpu_flags": ["avx2", "avx512f"]}) == "amd-avx512"
    assert cpu_slug({"vendor": "AuthenticAMD", "cpu_flags": ["avx2"]}) == "amd-avx2"


def test_ci_fails_on_the_reference_cpu_only() -> None:
    xeon = {"cpu": "Intel(R) Xeon(R) Processor", "cpu_flags": ["avx2", "avx512f", "amx_tile"]}
    assert same_cpu(xeon, dict(xeon))
    assert not same_cpu(xeon, {**xeon, "cpu_flags": ["avx2"]})  # a VM's generic name, another ISA
    assert not same_cpu(xeon, {"cpu": "AMD EPYC 7B13", "cpu_flags": ["avx2"]})


def test_the_identical_where_table_comes_from_the_records_and_names_missing_vendors(tmp_path: Path) -> None:
    table = identical_where()
    for name in CANDIDATES:
        for path, _ in references(name):
            assert path.name in table
    recorded = {ref["machine"]["vendor"] for name in CANDIDATES for _, ref in references(name)}
    if "GenuineIntel" not in recorded:
        assert "Intel: not yet recorded" in table
    assert "not yet recorded" in identical_where(tmp_path).splitlines()[2]  # an empty folder: nothing recorded


@pytest.mark.parametrize("content", ["{}", '{"files": {}, "machine": {"cpu": "x"}}',
                                     '{"files": {}, "machine": {"cpu": "x"}, "overrides": "preset=tiny"}', "[1]"])
def test_a_broken_reference_is_refused_in_one_line(tmp_path: Path, content: str) -> None:
    bad = tmp_path / "tiny-portable-avx2.amd-avx2.json"
    bad.write_text(content)
    with pytest.raises(InputError, match="not a reference file"):
        load_reference(bad)


# issue 35, item 12: an interrupted verify stops the stage it runs (no orphan writing on)

_VERIFY_LIKE = """
import sys, tempfile
from pathlib import Path
from s2s.common import tiny_pipeline
with tempfile.TemporaryDirectory(prefix="s2s-verify-") as scratch:
    Path(sys.argv[2]).write_text(scratch)
    stage = "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid()))\\nwhile True: time.sleep(1)"
    tiny_pipeline._run_child([sys.executable, "-c", stage, sys.argv[1]], dict(__import__("os").environ))
"""


def test_sigterm_to_verify_stops_its_stage_and_removes_the_scratch_folder(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from s2s.common.io import pid_alive

    child_pid, scratch_file = tmp_path / "stage.pid", tmp_path / "scratch"
    from s2s.common import verification

    env = {**os.environ, "PYTHONPATH": str(Path(verification.__file__).resolve().parents[2])}
    proc = subprocess.Popen([sys.executable, "-c", _VERIFY_LIKE, str(child_pid), str(scratch_file)], env=env)
    deadline = time.monotonic() + 120  # wait for the event (the stage is running), not for a time
    while not (child_pid.is_file() and child_pid.read_text()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    stage = int(child_pid.read_text())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 128 + signal.SIGTERM
    assert not pid_alive(stage), "the stage outlived verify"
    assert not Path(scratch_file.read_text()).exists(), "the scratch folder was left behind"


def test_writing_one_candidate_records_it_alone_and_keeps_the_battery(tmp_path: Path, monkeypatch) -> None:
    import s2s.common.verification as verification

    machine = verification.this_machine()
    battery = battery_path(machine, tmp_path)
    battery.write_text('{"kept": true}')
    runs: list[tuple] = []
    monkeypatch.setattr(verification, "run_tiny_pipeline", lambda base, overrides: runs.append(overrides) or {})
    monkeypatch.setattr(verification, "run_battery", lambda *a: pytest.fail("the battery was rerun"))
    name = "portable-avx2-transformer"
    assert verification.verify(write=True, candidates=[name], records=tmp_path) == 0
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([battery.name, f"tiny-{name}.{cpu_slug(machine)}.json"])
    assert battery.read_text() == '{"kept": true}'
    assert runs == [["preset=tiny", "logger=none", *CANDIDATES[name]["overrides"]]]


def test_the_battery_measures_each_branch_once() -> None:
    from s2s.common.verification import battery_settings

    keys = [key for key, _, _ in battery_settings(2)]
    assert keys == [f"{branch}/{t}" for branch in ("AVX2", "COMPATIBLE") for t in (1, 2, 4, 8)]
    assert [key for key, _, _ in battery_settings(16)][:5] == ["AVX2/1", "AVX2/2", "AVX2/4", "AVX2/8", "AVX2/16"]


def test_make_verify_without_a_corpus_ends_in_the_download_stages_one_line_and_exit_2(tmp_path: Path) -> None:
    """A user error of a stage (here: a mirror that holds no corpus) reaches the user as that one line."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "S2S_MIRROR": str(tmp_path)}  # an empty folder: no corpus, no network asked
    verify_script = Path(__file__).resolve().parents[3] / "src" / "verify.py"
    result = subprocess.run(
        [sys.executable, str(verify_script), "--candidate", "portable-avx2"],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("error: download stage of the tiny pipeline: ") and str(tmp_path) in lines[0]


def test_a_stage_that_fails_with_a_bug_keeps_the_end_of_its_output() -> None:
    from s2s.common.tiny_pipeline import stage_failure

    bug = stage_failure("train", 1, "Traceback (most recent call last):\nZeroDivisionError: x\n")
    assert isinstance(bug, RuntimeError) and "ZeroDivisionError" in str(bug)
    user = stage_failure("train", 2, "warning\nerror: conf/x.yaml: not valid YAML\n")
    assert isinstance(user, InputError) and str(user) == "train stage of the tiny pipeline: conf/x.yaml: not valid YAML"

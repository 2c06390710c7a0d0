"""Cross-machine check of portable numerics: rerun the tiny pipeline, compare checksums.

The reference (``reproducibility/tiny-portable.json``) holds the sha256 of the tiny pipeline's
metrics, translations and weights as one machine produced them, with that machine's CPU. Rerunning
the same stages here and finding the same bytes is the proof that portable numerics hold across
the two CPUs; the first file that differs is named, with both CPUs beside it.

The stages run as subprocesses, as a user runs them, in a scratch folder: nothing of the project's
own data/, models/ or reports/ is touched, and no MLflow store is written (``logger=none``).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from s2s.common.io import InputError, write_json_atomic

ROOT = Path(__file__).resolve().parents[3]
REFERENCE = ROOT / "reproducibility" / "tiny-portable.json"

# what the tiny pipeline runs with; a reference records it, and a check reruns exactly it
TINY_OVERRIDES = ("preset=tiny", "logger=none")

# the outputs whose bytes must agree (paths under the scratch folder), in stage order: the first
# that differs names the stage where the machines parted (the data, the weights or the decoding)
CHECKED = (
    "data/prepared/spm.model",
    "data/prepared/train.npz",
    "reports/metrics.json",
    "reports/eval/translations/test_2016_flickr.tsv",
    "reports/eval/translations/test_2017_mscoco.tsv",
    "reports/eval/translations/test_2018_flickr.tsv",
    "models/model.pt",
)

STAGES = ("download", "preprocess", "train", "evaluate")
STAGE_TIMEOUT_S = 1800  # a hung stage fails the check instead of blocking CI forever


def _paths(base: Path) -> list[str]:
    return [
        f"paths.raw_dir={base}/data/raw",
        f"paths.prepared_dir={base}/data/prepared",
        f"paths.checkpoint_dir={base}/checkpoints",
        f"paths.model_dir={base}/models",
        f"paths.reports_dir={base}/reports",
        f"hydra.run.dir={base}/hydra",
    ]


def run_tiny_pipeline(
    base: Path,
    overrides: Sequence[str] = TINY_OVERRIDES,
    env: Mapping[str, str] | None = None,
    stages: Sequence[str] = STAGES,
) -> dict[str, str]:
    """Run ``stages`` of the pipeline into ``base`` with ``overrides``; the sha256 of :data:`CHECKED`.

    ``env`` replaces the process environment of the stages (an emulated CPU caps MKL, ATen and
    oneDNN from there). A stage that fails raises :class:`RuntimeError` with the end of its output.
    """
    base.mkdir(parents=True, exist_ok=True)
    stage_env = dict(os.environ if env is None else env)
    stage_env.pop("HYDRA_FULL_ERROR", None)
    for stage in stages:
        cmd = [sys.executable, str(ROOT / "src" / f"{stage}.py"), *overrides, *_paths(base)]
        result = subprocess.run(
            cmd, cwd=ROOT, env=stage_env, capture_output=True, text=True, timeout=STAGE_TIMEOUT_S
        )
        if result.returncode != 0:
            raise RuntimeError(f"{stage} exited {result.returncode}:\n{result.stderr[-3000:]}")
    return {name: sha256(base / name) for name in CHECKED if (base / name).is_file()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def this_machine() -> dict[str, Any]:
    """The CPU and library versions of this machine, as a reference records them."""
    import torch

    from s2s.common.numerics import cpu_flags, cpu_model

    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "torch": str(torch.__version__)}


def describe(machine: Mapping[str, Any]) -> str:
    """``Intel(R) Xeon(R) Processor (avx2 avx512f amx_tile)``: the model name can be generic in a VM."""
    flags = " ".join(machine.get("cpu_flags") or [])
    return f"{machine['cpu']} ({flags})" if flags else str(machine["cpu"])


def load_reference(path: Path = REFERENCE) -> dict[str, Any]:
    try:
        reference = json.loads(path.read_text(encoding="utf-8"))
        reference["files"], reference["machine"]["cpu"]  # noqa: B018 - the keys a check needs
    except FileNotFoundError as err:
        raise InputError(f"{path}: no reference checksums (write them with --write)") from err
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a reference file ({err})") from err
    return reference


def differences(reference: Mapping[str, str], here: Mapping[str, str]) -> list[str]:
    """The checked files whose checksum here differs from the reference's (or is missing on a side)."""
    return [name for name in CHECKED if reference.get(name) != here.get(name)]


def same_cpu(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same CPU model with the same ISA flags: where even the fast mode must match."""
    return a.get("cpu") == b.get("cpu") and list(a.get("cpu_flags") or []) == list(b.get("cpu_flags") or [])


def verify(
    reference_path: Path = REFERENCE, *, write: bool = False, keep: Path | None = None, other_cpu_fails: bool = True
) -> int:
    """Rerun the tiny pipeline; print ``matched`` or ``differs: FILE`` with both CPUs; 0 or 1.

    ``write`` records this machine's checksums as the new reference instead of comparing.
    ``other_cpu_fails=False`` (CI): a difference on the reference's own CPU model is a code change
    that altered results and fails; on another CPU it is printed as a finding and returns 0.
    """
    reference = None if write else load_reference(reference_path)
    overrides = list(reference["overrides"]) if reference else list(TINY_OVERRIDES)
    with tempfile.TemporaryDirectory(prefix="s2s-verify-") as scratch:
        base = keep or Path(scratch)
        here = run_tiny_pipeline(base, overrides)
    machine = this_machine()
    if write:
        write_json_atomic(reference_path, {"machine": machine, "overrides": overrides, "files": here})
        print(f"wrote {reference_path} ({machine['cpu']})")
        return 0
    assert reference is not None
    cpus = f"reference CPU: {describe(reference['machine'])}; this CPU: {describe(machine)}"
    differ = differences(reference["files"], here)
    if not differ:
        print(f"matched: {len(here)} files byte-identical ({cpus})")
        return 0
    for name in differ:
        print(f"differs: {name} (reference {reference['files'].get(name, 'missing')[:12]}, "
              f"here {here.get(name, 'missing')[:12]}; {cpus})")
    if other_cpu_fails or same_cpu(reference["machine"], machine):
        return 1
    print("warning: portable numerics did not reproduce the reference on this CPU: a finding to report, "
          "not a failure of this change (on the reference's own CPU model it would be)")
    return 0

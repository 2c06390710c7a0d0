"""The tiny pipeline as ``make verify`` runs it: the four stages as subprocesses, and the sha256 of
the outputs whose bytes must agree between machines (:data:`CHECKED`).

The stages run as a user runs them, in a scratch folder: nothing of the project's own data/,
models/ or reports/ is touched, and no MLflow store is written (``logger=none``). A SIGTERM to
this process stops the stage it runs too (no orphan writing on).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from s2s.common.io import InputError

ROOT = Path(__file__).resolve().parents[3]

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
        returncode, stderr = _run_child(cmd, stage_env)
        if returncode != 0:
            raise stage_failure(stage, returncode, stderr)
    return {name: sha256(base / name) for name in CHECKED if (base / name).is_file()}


def stage_failure(stage: str, returncode: int, stderr: str) -> Exception:
    """The error for a failed stage: a user error (exit 2 with its one ``error: ...`` line, such as
    a download with no mirror and no network) stays one line; anything else keeps the output's end."""
    errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
    if returncode == 2 and errors:
        return InputError(f"{stage} stage of the tiny pipeline: {errors[-1].removeprefix('error: ')}")
    return RuntimeError(f"{stage} exited {returncode}:\n{stderr[-3000:]}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_child(cmd: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    """Run a stage; a SIGTERM/SIGINT to this process stops it too (no orphan writing on)."""
    with tempfile.TemporaryFile(mode="w+") as err:
        child = subprocess.Popen(cmd, cwd=ROOT, env=dict(env), stdout=subprocess.DEVNULL, stderr=err, text=True)
        with _forward_signals(child):
            try:
                returncode = child.wait(timeout=STAGE_TIMEOUT_S)
            except BaseException:
                child.kill()
                child.wait()
                raise
        err.seek(0)
        return returncode, err.read()


@contextmanager
def _forward_signals(child: subprocess.Popen) -> Iterator[None]:
    """Pass SIGTERM to ``child``, then raise here as the default handler would have ended us."""

    def stop(signum: int, _frame: Any) -> None:
        child.terminate()
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
        raise SystemExit(128 + signum)

    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers belong to the main thread
        return
    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""One training per checkpoint folder, through the real train stage: a second training in the same
folder fails at once (before Lightning or MLflow is imported), an unwritable folder and a params.yaml
changed under a running stage are one-line errors that publish nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from s2s.training.run_lock import LOCK_NAME

from conftest import ROOT, copy_tiny, run_script
from helpers.processes import hold_lock
from helpers.train_outputs import publish_earlier, published


@pytest.mark.slow
def test_second_training_in_the_same_folder_fails_at_once(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    holder = hold_lock(tmp_path / "checkpoints")
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"the other run's state")
    try:
        result = run_script("train", *paths, "logger=none", check=False)
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"locked by process PID {holder.pid}" in errors[0]
    assert "Traceback" not in result.stderr
    # the other run's files are untouched
    assert (tmp_path / "checkpoints" / "last.ckpt").read_bytes() == b"the other run's state"
    assert not (tmp_path / "models").exists()


@pytest.mark.slow
def test_unwritable_checkpoint_folder_is_one_line(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    if os.geteuid() == 0:
        target = "/proc/s2s-checkpoints"  # root ignores permission bits; /proc refuses new entries
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        target = str(tmp_path / "ro" / "checkpoints")
    result = run_script("train", *paths, f"paths.checkpoint_dir={target}", "logger=none", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not writable" in errors[0]


@pytest.mark.slow
def test_params_yaml_changed_under_a_running_stage_publishes_nothing(tiny_data: Path, tmp_path: Path) -> None:
    """Two `dvc exp run` at once: the second recomposes params.yaml while the first's stage runs."""
    import time

    from omegaconf import OmegaConf

    from conftest import compose_config

    overrides = [p for p in copy_tiny(tiny_data, tmp_path) if not p.startswith("hydra.")]
    cfg = compose_config([*overrides, "trainer.max_epochs=1", "logger=none"])
    params = tmp_path / "params.yaml"
    OmegaConf.save(cfg, params)
    earlier = publish_earlier(tmp_path)  # issue 35, item 11: a stage that does not publish leaves it
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen(
        [sys.executable, "src/train.py", "--config-dir", str(tmp_path), "--config-name", "params",
         f"hydra.run.dir={tmp_path}/hydra"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lock = tmp_path / "checkpoints" / LOCK_NAME
    deadline = time.monotonic() + 300
    while not (lock.is_file() and lock.read_text().strip()):  # the stage has started training
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, "training never took its lock"
        time.sleep(0.05)
    cfg.optim.lr = cfg.optim.lr * 2  # what `dvc exp run -S optim.lr=...` does to params.yaml meanwhile
    OmegaConf.save(cfg, params)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 2, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert errors[0].startswith("error: params.yaml changed while this stage ran (another dvc exp run?): ")
    assert published(tmp_path) == earlier, "the published files as they were, nothing added"


def test_a_held_lock_is_refused_before_lightning_or_mlflow_is_imported(tmp_path: Path) -> None:
    """The refusal is prompt: it comes before the seconds of importing Lightning and MLflow (an
    observable event, the import log, rather than a timer)."""
    holder = hold_lock(tmp_path / "checkpoints")
    try:
        result = run_script(
            "train",
            "preset=tiny",
            f"paths.prepared_dir={tmp_path}/prepared",
            f"paths.checkpoint_dir={tmp_path}/checkpoints",
            f"paths.model_dir={tmp_path}/models",
            f"paths.reports_dir={tmp_path}/reports",
            f"hydra.run.dir={tmp_path}/hydra",
            f"logger.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
            env={"PYTHONPROFILEIMPORTTIME": "1"},
            check=False,
        )
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"locked by process PID {holder.pid}" in errors[0]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "pytorch_lightning" not in imported and "mlflow" not in imported

"""Reliability: resume after SIGKILL, SIGTERM or SIGUSR1 gives the weights of an uninterrupted run; a
signal exits non-zero after saving; a corrupt last.ckpt does not block the rerun; bad init weights and
NaN losses are one-line errors; killed stages leave no output."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import HELPERS, ROOT, SHORT_TRAINING, copy_tiny, run_script, tiny_paths

pytestmark = pytest.mark.slow

# 600 pairs / 32 per batch = 19 steps an epoch; 24 steps cross one epoch end (a validation, the
# best checkpoint, the sampler's new epoch); a checkpoint every 3 steps
RUN = ["trainer.max_epochs=2", "trainer.max_steps=24", "train.save_every_n_steps=3", "logger=none"]
STEPS = 24



def resumed_from_checkpoint(result: subprocess.CompletedProcess[str]) -> bool:
    """Lightning said it restored the checkpoint (through Hydra's logging: stdout and the job log)."""
    output = result.stdout + result.stderr
    return "Restoring states from the checkpoint" in output or "Restored all states" in output

def weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def start_train(overrides: list[str]) -> subprocess.Popen:
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen(
        [sys.executable, "src/train.py", *overrides],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,  # Hydra logs to stdout, errors go to stderr: one stream to check
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"training ended before {path} appeared: {proc.stdout.read()[-2000:]}"
        assert time.time() < deadline, f"{path} did not appear"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def straight_weights(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The weights of an uninterrupted run of RUN (shared by the interruption tests)."""
    base = tmp_path_factory.mktemp("straight")
    run_script("train", *copy_tiny(tiny_data, base), *RUN)
    return weights(base / "checkpoints/last.ckpt")


def assert_same_weights(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert got.keys() == expected.keys()
    for name in expected:
        # CPU kernels are deterministic for the same inputs, so the weights are bit-identical
        assert torch.equal(got[name], expected[name]), name


def test_resume_after_sigkill_gives_identical_weights(
    tiny_data: Path, tmp_path: Path, straight_weights: dict[str, torch.Tensor]
) -> None:
    resumed = copy_tiny(tiny_data, tmp_path / "resumed")
    proc = start_train([*resumed, *RUN])
    last = tmp_path / "resumed/checkpoints/last.ckpt"
    wait_for(last, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < step < STEPS, "the kill must come mid-run"
    assert not (tmp_path / "resumed/models/model.pt").exists()

    # the same command again resumes from last.ckpt (optimiser, schedule, sampler position, RNG)
    result = run_script("train", *resumed, *RUN)
    assert resumed_from_checkpoint(result)
    assert_same_weights(weights(last), straight_weights)


@pytest.mark.parametrize(
    "sig", [signal.SIGTERM, signal.SIGUSR1, signal.SIGINT], ids=["SIGTERM", "SIGUSR1", "SIGINT"]
)
def test_signal_saves_exits_nonzero_and_the_same_command_resumes_exactly(
    tiny_data: Path, tmp_path: Path, straight_weights: dict[str, torch.Tensor], sig: signal.Signals
) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    proc = start_train([*paths, *RUN])
    last = tmp_path / "checkpoints/last.ckpt"
    wait_for(last, proc)  # the first periodic checkpoint: training is under way
    proc.send_signal(sig)
    output, _ = proc.communicate(timeout=300)
    # a stopped run is not a success: 128 + the signal number, after saving a resumable checkpoint
    assert proc.returncode == 128 + sig, output[-2000:]
    assert f"interrupted by {sig.name}" in output and "Traceback" not in output
    assert not (tmp_path / "models/model.pt").exists()
    step = torch.load(last, map_location="cpu", weights_only=True)["global_step"]
    assert 0 < step < STEPS, "the signal must stop the run mid-way"

    result = run_script("train", *paths, *RUN)  # the SAME command
    assert resumed_from_checkpoint(result)
    assert_same_weights(weights(last), straight_weights)
    assert (tmp_path / "models/model.pt").is_file()


ACCUMULATED = [*RUN, "trainer.accumulate_grad_batches=2"]


def test_a_signal_inside_an_accumulation_window_resumes_exactly(tiny_data: Path, tmp_path: Path) -> None:
    """With 2 batches per optimizer step, a SIGTERM during the first batch of a window is acted on
    at the end of the window: the checkpoint holds every consumed batch's gradient, so the resumed
    run ends with the uninterrupted run's weights."""
    straight = copy_tiny(tiny_data, tmp_path / "straight")
    run_script("train", *straight, *ACCUMULATED)
    paths = copy_tiny(tiny_data, tmp_path / "resumed")
    # batch 4 starts the window of batches 4 and 5 (optimizer step 3); no periodic save before it
    result = subprocess.run(
        [sys.executable, str(HELPERS / "signal_at_batch.py"), "4", "SIGTERM", "src/train.py", *paths, *ACCUMULATED],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 128 + signal.SIGTERM, result.stderr[-3000:]
    last = tmp_path / "resumed/checkpoints/last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["global_step"] == 3, "saved at the window's end"
    run_script("train", *paths, *ACCUMULATED)
    assert_same_weights(weights(last), weights(tmp_path / "straight/checkpoints/last.ckpt"))


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_corrupt_last_checkpoint_does_not_block_the_rerun(tiny_data: Path, tmp_path: Path, damage: str) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    proc = start_train([*paths, *RUN])
    last = tmp_path / "checkpoints/last.ckpt"
    wait_for(last, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    data = last.read_bytes()
    last.write_bytes(b"" if damage == "empty" else data[: len(data) // 2])
    result = run_script("train", *paths, *RUN, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    warnings = [line for line in (result.stdout + result.stderr).splitlines() if "cannot resume from" in line]
    assert len(warnings) == 1 and "last.ckpt" in warnings[0]
    assert (tmp_path / "models/model.pt").is_file()


@pytest.mark.parametrize("case", ["random_bytes", "other_vocabulary"])
def test_bad_init_weights_are_one_line(tiny_data: Path, tmp_path: Path, case: str) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    init = tmp_path / "init.pt"
    if case == "random_bytes":
        init.write_bytes(os.urandom(10_000))
    else:
        # same architecture and vocabulary size, another SentencePiece model (other pieces)
        from s2s.models.build import build_model
        from s2s.models.model_file import save_model_file

        from conftest import compose_config

        cfg = compose_config(["preset=tiny"])
        model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
        other_spm = tmp_path / "other_spm.model"
        other_spm.write_bytes(b"another vocabulary")
        save_model_file(init, build_model(model_cfg, 400).state_dict(), model_cfg, 400, other_spm)
    result = run_script("train", *paths, f"train.init_from={init}", "logger=none", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "train.init_from" in errors[0]


def test_averaged_export_does_not_claim_the_best_checkpoints_bleu(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    run_script("train", *paths, "trainer.max_epochs=2", "train.average_last=2", "logger=none")
    info = json.loads((tmp_path / "models/run.json").read_text())
    assert info["source"] == "average of 2: epoch=0.ckpt, epoch=1.ckpt"  # Lightning's epoch numbers, from 0
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("epoch*.ckpt")) == ["epoch=0.ckpt", "epoch=1.ckpt"]
    assert info["val_bleu"] is None, "averaged weights were never validated"
    assert info["best_checkpoint_val_bleu"] is not None


def test_nan_loss_stops_with_the_step_named(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    # a step this large overflows the weights: the second forward pass is not finite
    result = run_script("train", *paths, "optim.lr=1e36", "logger=none", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "non-finite training loss" in result.stderr and "global step" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models/model.pt").exists()
    assert not (tmp_path / "checkpoints/last.ckpt").exists(), "nothing saved from a non-finite step"


def _finished_run(ckpt: Path) -> dict[str, bytes]:
    """A finished run's checkpoint folder (of another configuration, so the next run starts fresh)."""
    ckpt.mkdir(parents=True)
    for name, data in {
        "best.ckpt": b"best weights",
        "last.ckpt": b"last weights",
        "config.yaml": b"seed: 1\n",
        "COMPLETE": b"done\n",
        "fingerprint.json": json.dumps({"fingerprint": "0123456789abcdef", "world_size": 1, "config": {}}).encode(),
    }.items():
        (ckpt / name).write_bytes(data)
    return {p.name: p.read_bytes() for p in ckpt.iterdir()}


@pytest.mark.parametrize("fault", ["missing_data", "nan_loss"])
def test_a_run_failing_before_its_first_checkpoint_keeps_the_finished_run(
    tiny_data: Path, tmp_path: Path, fault: str
) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    before = _finished_run(tmp_path / "checkpoints")
    if fault == "missing_data":
        (tmp_path / "prepared/train.npz").unlink()
        extra = []
    else:
        extra = ["optim.lr=1e36"]  # the first step overflows the weights: the next loss is not finite
    result = run_script("train", *paths, *RUN, *extra, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    left = {p.name: p.read_bytes() for p in (tmp_path / "checkpoints").iterdir() if p.name != ".lock"}
    assert left == before


def test_a_finished_run_of_the_same_configuration_is_exported_again_without_training(
    tiny_data: Path, tmp_path: Path
) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    run_script("train", *paths, *RUN)
    model = (tmp_path / "models/model.pt").read_bytes()
    (tmp_path / "models/model.pt").unlink()
    last = tmp_path / "checkpoints/last.ckpt"
    stamp = last.stat().st_mtime_ns
    # issue 35, item 9: a SIGKILL while DVCLive wrote its summary left it empty; every rerun died
    # with a JSONDecodeError until the file was deleted by hand. DVCLive writes into the run's
    # folder (checkpoints/dvclive), published as reports/dvclive with the model (item 11)
    summary = tmp_path / "checkpoints/dvclive/metrics.json"
    published = tmp_path / "reports/dvclive/metrics.json"
    total_steps = json.loads(summary.read_text())["total_steps"]
    assert json.loads(published.read_text()) == json.loads(summary.read_text())
    summary.write_bytes(b"")
    published.unlink()
    # another mirror for the corpus does not change the data: same configuration
    result = run_script("train", *paths, *RUN, "data.sources.multi30k.mirror=/elsewhere")
    assert "exported again without training" in result.stdout + result.stderr
    assert (tmp_path / "models/model.pt").read_bytes() == model
    assert last.stat().st_mtime_ns == stamp, "nothing trained, nothing saved"
    assert json.loads(summary.read_text())["total_steps"] == total_steps == STEPS
    assert json.loads(published.read_text())["total_steps"] == STEPS, "published again with the model"


def train_in(project: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    """``python <repo>/src/train.py`` run inside ``project``, every path relative to it: the same
    command gives the same arguments in whatever folder the project lies."""
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "src/train.py"), *tiny_paths(Path(".")), *overrides],
        cwd=project, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


# two epochs, each ending with a validation: a best checkpoint and its score
VALIDATED = [SHORT_TRAINING, "logger=none"]


@pytest.mark.parametrize("how", ["copied", "moved"])
def test_a_finished_run_in_a_moved_project_is_exported_again_byte_for_byte(
    tiny_data: Path, tmp_path: Path, how: str
) -> None:
    """Issue 34, item 5: in a copy of the project (``cp -a``, a tarball, a queue worker) the finished
    run was exported again with ``val_bleu: None`` (Lightning reloads no ``best_model_score`` from a
    checkpoint whose dirpath differs) and from the old folder's ``best.ckpt`` while it existed."""
    project = tmp_path / "project"
    shutil.copytree(tiny_data / "prepared", project / "prepared")
    train_in(project, *VALIDATED)
    model = (project / "models/model.pt").read_bytes()
    assert torch.load(project / "models/model.pt", weights_only=True)["meta"]["val_bleu"] is not None

    elsewhere = tmp_path / "elsewhere"
    subprocess.run(["cp", "-a", str(project), str(elsewhere)], check=True)
    if how == "moved":  # a tarball unpacked elsewhere: nothing is left at the old paths
        shutil.rmtree(project)
    (elsewhere / "models/model.pt").unlink()
    result = train_in(elsewhere, *VALIDATED)
    assert "exported again without training" in result.stdout + result.stderr
    assert "dirpath has changed" not in result.stdout + result.stderr
    meta = torch.load(elsewhere / "models/model.pt", weights_only=True)["meta"]
    assert meta["val_bleu"] is not None and meta["best_checkpoint_val_bleu"] is not None
    assert (elsewhere / "models/model.pt").read_bytes() == model
    if how == "copied":  # the old folder's files were neither read nor written
        assert (project / "models/model.pt").read_bytes() == model


def test_a_finished_run_over_changed_data_trains_afresh_keeping_the_old_run(tiny_data: Path, tmp_path: Path) -> None:
    """Issue 35, items 1 and 4: the README's own-corpus workflow (the corpus changes, preprocess
    reruns) must not export the old weights again, and the old run's checkpoints are kept aside."""
    import numpy as np

    from s2s.data.encoded import save_encoded

    paths = copy_tiny(tiny_data, tmp_path)
    run_script("train", *paths, *RUN)
    old_last = (tmp_path / "checkpoints/last.ckpt").read_bytes()
    # the user's corpus changed: fewer training pairs (same vocabulary here; the ids still differ)
    train = tmp_path / "prepared/train.npz"
    with np.load(train) as z:
        src, so, tgt, to = z["src"], z["src_offsets"], z["tgt"], z["tgt_offsets"]
    n = len(so) - 1 - 40
    save_encoded(train, src[: so[n]], so[: n + 1], tgt[: to[n]], to[: n + 1])
    result = run_script("train", *paths, *RUN)
    output = result.stdout + result.stderr
    assert "exported again without training" not in output and not resumed_from_checkpoint(result)
    assert "prepared.train.npz" in output  # the reason names what changed
    kept = [p for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith("stale-")]
    assert len(kept) == 1 and (kept[0] / "last.ckpt").read_bytes() == old_last
    assert (kept[0] / "COMPLETE").is_file()

"""Publishing a folder (data/raw, data/prepared) survives a kill at every step.

s2s.common.io.atomic_path renames the old folder aside, renames the new one into place, then removes the
old one.  A kill at any step must leave either the old or the new complete folder (or an aside
copy that the next run restores), and the next run must clean what the killed one left.  The
kills come at exact steps through s2s.common.io.publish_hook (see tests/helpers/kill_at_publish.py), never
after a guessed delay.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from s2s.common.io import PUBLISH_STEPS, atomic_path, recover_dir

from conftest import HELPERS, ROOT, mirror_dir, tiny_paths

KILLED = -9


def tree(folder: Path) -> dict[str, str]:
    """File name -> sha256 of every file under ``folder``."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def leftovers(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir() if p.name.startswith(f".{target.name}."))


# --- s2s.common.io.atomic_path in a child process --------------------------------------------------------

CHILD = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, {src!r})
    import s2s.common.io
    from pathlib import Path

    def kill_at(step, target):
        if step == {step!r}:
            os.kill(os.getpid(), signal.SIGKILL)

    s2s.common.io.publish_hook = kill_at
    with s2s.common.io.atomic_path({target!r}, is_dir=True) as tmp:
        (tmp / "new.txt").write_text("new")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.txt").write_text("b")
    """
)

NEW = {"new.txt": hashlib.sha256(b"new").hexdigest(), "sub/b.txt": hashlib.sha256(b"b").hexdigest()}
OLD = {"old.txt": hashlib.sha256(b"old").hexdigest()}


def publish_killed_at(step: str, target: Path) -> None:
    code = CHILD.format(src=str(ROOT / "src"), step=step, target=str(target))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == KILLED, result.stderr


@pytest.mark.parametrize("had_old", [True, False], ids=["replace", "first"])
@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_kill_at_each_publish_step_keeps_a_complete_folder(tmp_path: Path, step: str, had_old: bool) -> None:
    target = tmp_path / "prepared"
    if had_old:
        target.mkdir()
        (target / "old.txt").write_text("old")
    publish_killed_at(step, target)

    recover_dir(target)  # what the next run does first
    state = tree(target) if target.exists() else None
    if step == "renamed":
        assert state == NEW
    elif had_old:
        assert state == OLD, "the old folder is in place (or put back) until the new one is"
    else:
        assert state is None
    assert leftovers(target) == [], "the next run removes the killed run's temporary and aside folders"

    with atomic_path(target, is_dir=True) as tmp:  # and the rerun publishes normally
        (tmp / "again.txt").write_text("again")
    assert sorted(os.listdir(tmp_path)) == ["prepared"]
    assert list(tree(target)) == ["again.txt"]


def test_an_aside_folder_without_target_is_restored_by_the_next_publish(tmp_path: Path) -> None:
    target = tmp_path / "raw"
    target.mkdir()
    (target / "old.txt").write_text("old")
    publish_killed_at("aside", target)
    assert not target.exists() and (tmp_path / ".raw.old").is_dir()
    with pytest.raises(RuntimeError):
        with atomic_path(target, is_dir=True):
            assert tree(target) == OLD, "restored before the new folder is written"
            raise RuntimeError("the rerun fails too")
    assert tree(target) == OLD
    assert leftovers(target) == []


def test_a_live_process_temporary_folder_is_not_removed(tmp_path: Path) -> None:
    target = tmp_path / "prepared"
    live = tmp_path / f".prepared.{os.getppid()}.abcd1234.tmp"  # a running process's work in progress
    live.mkdir()
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "a").write_text("a")
    assert live.is_dir()


# --- the real download and preprocess stages, killed while they publish ----------------------------


@pytest.fixture(scope="module")
def raw_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny preset's raw corpus, downloaded once from the mirror."""
    base = tmp_path_factory.mktemp("publish")
    run_stage("download", base)
    return base / "raw"


def run_stage(stage: str, base: Path, *extra: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    mirror = [f"data.mirror={mirror_dir()}"] if stage == "download" else []
    args = [f"src/{stage}.py", *tiny_paths(base), *mirror, *extra]
    cmd = [sys.executable, *([str(HELPERS / "kill_at_publish.py"), kill_at] if kill_at else []), *args]
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if kill_at:
        assert result.returncode == KILLED and f"killed at publish step {kill_at}" in result.stderr, result.stderr
    else:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


def after_kill(target: Path, step: str) -> dict[str, str]:
    """The complete folder a kill at ``step`` leaves: in place, or (between the renames) aside."""
    aside = target.parent / f".{target.name}.old"
    if step == "aside":
        assert not target.exists(), "the kill came between the two renames"
        return tree(aside)
    return tree(target)


@pytest.mark.slow
@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_download_killed_while_publishing(raw_files: Path, tmp_path: Path, step: str) -> None:
    target = tmp_path / "raw"
    shutil.copytree(raw_files, target)
    (target / "from-the-old-run").write_text("old")
    old, new = tree(target), tree(raw_files)

    run_stage("download", tmp_path, kill_at=step)
    assert after_kill(target, step) == (new if step == "renamed" else old)

    run_stage("download", tmp_path)  # the rerun restores or cleans, then publishes
    assert tree(target) == new
    assert leftovers(target) == []


@pytest.mark.slow
@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_preprocess_killed_while_publishing(raw_files: Path, tmp_path: Path, step: str) -> None:
    shutil.copytree(raw_files, tmp_path / "raw")
    target = tmp_path / "prepared"
    run_stage("preprocess", tmp_path, "preprocess.spm.vocab_size=300")
    old = tree(target)

    # the tiny preset's own vocabulary size (400): every file of the new folder differs
    run_stage("preprocess", tmp_path, kill_at=step)
    killed = after_kill(target, step)

    run_stage("preprocess", tmp_path)
    new = tree(target)
    assert set(new) == set(old) and all(new[name] != old[name] for name in ("spm.model", "train.npz"))
    assert killed == (new if step == "renamed" else old)
    assert leftovers(target) == []


# --- the evaluate stage publishes its set and summary together ---------------------------------------

@pytest.mark.slow
def test_a_failed_evaluate_keeps_the_old_summary_and_set(tiny_data: Path, tmp_path: Path) -> None:
    """A failure while the new set is written (here a full disk) leaves reports/metrics.json and
    reports/eval/ both as they were: the old summary is never removed beside the old set."""
    from omegaconf import OmegaConf

    from s2s.data.vocab import Vocabulary
    from s2s.models.build import build_model
    from s2s.models.model_file import save_model_file

    from conftest import compose_config, copy_tiny

    paths = copy_tiny(tiny_data, tmp_path)
    spm = tmp_path / "prepared/spm.model"
    model_cfg = OmegaConf.to_container(compose_config(["preset=tiny"]).model, resolve=True)
    size = len(Vocabulary(spm))
    save_model_file(tmp_path / "models/model.pt", build_model(model_cfg, size).state_dict(), model_cfg, size, spm)
    reports = tmp_path / "reports"
    (reports / "eval").mkdir(parents=True)
    (reports / "eval/metrics.json").write_text('{"bleu": 1.0}\n')
    (reports / "metrics.json").write_text('{"bleu": 1.0}\n')
    before = tree(reports)
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, str(HELPERS / "fail_at.py"), "s2s.evaluation.scoring:write_translations", "src/evaluate.py",
         *paths, "decode=greedy", "evaluate.robustness_levels=[]", "evaluate.heatmaps=0", "logger=none"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode != 0 and "No space left on device" in result.stderr, result.stderr[-3000:]
    assert tree(reports) == before
    assert leftovers(reports / "eval") == [] and leftovers(reports / "metrics.json") == []

    # the same command without the fault publishes both, the summary a copy of the set's metrics
    subprocess.run(
        [sys.executable, "src/evaluate.py", *paths, "decode=greedy", "evaluate.robustness_levels=[]",
         "evaluate.heatmaps=0", "logger=none"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    import json

    summary = json.loads((reports / "metrics.json").read_text())
    report = json.loads((reports / "eval/report.json").read_text())
    scores = json.loads((reports / "eval/metrics.json").read_text())["test_sets"][report["split"]][report["direction"]]
    assert summary == scores  # the summary is the primary test set's scores of the new set
    assert (reports / "eval/translations").is_dir()

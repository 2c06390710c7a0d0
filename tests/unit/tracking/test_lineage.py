"""Lineage tags of a training run: ``git_dirty`` says whether the code differs, not DVC's own files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from s2s.tracking.lineage import git_info


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    for name in ("src/train.py", "conf/config.yaml", "params.yaml", "dvc.lock", "reports/metrics.json", "README.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("0\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return tmp_path


def test_files_dvc_writes_do_not_make_a_run_dirty(repo: Path) -> None:
    for name in ("params.yaml", "dvc.lock", "reports/metrics.json"):
        (repo / name).write_text("1\n")
    (repo / "untracked.txt").write_text("new\n")
    info = git_info(repo)
    assert info["git_dirty"] == "false"
    assert "git_diff_sha256" not in info


@pytest.mark.parametrize("name", ["src/train.py", "conf/config.yaml", "README.md"])
def test_a_changed_tracked_file_makes_it_dirty(repo: Path, name: str) -> None:
    (repo / name).write_text("1\n")
    info = git_info(repo)
    assert info["git_dirty"] == "true"
    assert len(info["git_diff_sha256"]) == 64

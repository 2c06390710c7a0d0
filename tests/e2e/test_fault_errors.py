"""Damaged files, a file size limit and garbage YAML in params.yaml end a stage with one line
``error: ...`` and exit 2, through the real stage scripts, never a traceback."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, copy_tiny, tiny_paths


def _run(script: str, *args: str, stdin: str | None = None, preexec=None, cwd: Path = ROOT):
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = str(ROOT / "src")
    return subprocess.run(
        [sys.executable, str(ROOT / "src" / f"{script}.py"), *args, "logger=none"],
        cwd=cwd, env=env, input=stdin, capture_output=True, text=True, timeout=300, preexec_fn=preexec,
    )  # fmt: skip


def _one_error_line(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _truncate(path: Path, keep: int = 1000) -> None:
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("script", ["train", "evaluate", "translate"])
def test_truncated_spm_model(tiny_data: Path, tmp_path: Path, script: str) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    _truncate(tmp_path / "prepared" / "spm.model")
    result = _run(script, *paths, stdin="A man.\n")
    line = _one_error_line(result, f"{tmp_path / 'prepared' / 'spm.model'}: not a readable SentencePiece model")
    assert "another SentencePiece vocabulary" not in line


def test_truncated_encoded_split(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    _truncate(tmp_path / "prepared" / "valid.npz")
    result = _run("train", *paths)
    _one_error_line(result, f"{tmp_path / 'prepared' / 'valid.npz'}: not a readable encoded split")


def test_garbage_yaml_in_params(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text() + "seed: [1, 2\n  bad: : :\n")
    for script in ("preprocess", "train"):
        result = _run(script, "--config-dir", str(tmp_path), "--config-name", "params", f"hydra.run.dir={tmp_path}/h")
        _one_error_line(result, f"{params}: not valid YAML", "line ")
    assert not (tmp_path / "h").exists()


def _file_size_limit(size: int):
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_file_size_limit_in_preprocess(tmp_path: Path) -> None:
    """`ulimit -f`: preprocess's first big write fails; one line, nothing half-written."""
    paths = tiny_paths(tmp_path)
    mirror = os.environ.get("S2S_MIRROR")
    if not mirror:
        pytest.skip("needs the Multi30k mirror (S2S_MIRROR)")
    assert _run("download", *paths, f"data.mirror={mirror}").returncode == 0
    result = _run("preprocess", *paths, preexec=_file_size_limit(100_000))
    _one_error_line(result, "File too large", "ulimit -f")
    assert not (tmp_path / "prepared").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".prepared")]



"""Damaged files, a full disk, a file size limit and garbage YAML end a stage with one line
``error: ...`` and exit 2, through the real stage scripts, never a traceback."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from s2s.common.cli import check_yaml, user_errors
from s2s.common.io import InputError

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


def test_garbage_yaml_in_conf(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    bad = conf / "model" / "bigru_attn.yaml"
    bad.write_text("name: [bigru\n")
    with pytest.raises(InputError, match=rf"^{bad}: not valid YAML \(.*line 2"):
        check_yaml([], conf)
    check_yaml([], ROOT / "conf")  # the shipped files parse


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


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG])
def test_full_disk_is_one_line(code: int, capsys: pytest.CaptureFixture[str]) -> None:
    @user_errors
    def stage() -> None:
        try:
            raise OSError(code, os.strerror(code), "/data/prepared/.train.src.bin")
        except OSError as err:  # as torch.save / numpy wrap it
            raise RuntimeError("writing failed") from err

    with pytest.raises(SystemExit) as info:
        stage()
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        f"error: /data/prepared/.train.src.bin: {os.strerror(code)}: free disk space (or raise the "
        "file size limit, ulimit -f) and run the same command again"
    )

"""s2s.common.cli: garbage YAML in conf/ is named with its line; a full disk is one line and exit 2."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from s2s.common.cli import check_yaml, user_errors
from s2s.common.io import InputError

from conftest import ROOT


def test_garbage_yaml_in_conf(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(ROOT / "conf", conf)
    bad = conf / "model" / "bigru_attn.yaml"
    bad.write_text("name: [bigru\n")
    with pytest.raises(InputError, match=rf"^{bad}: not valid YAML \(.*line 2"):
        check_yaml([], conf)
    check_yaml([], ROOT / "conf")  # the shipped files parse


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


def test_ctrl_c_in_a_stage_is_one_line_and_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    from s2s.common.cli import user_errors

    @user_errors
    def stage() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stopped:
        stage()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "error: interrupted (Ctrl-C)\n"


def test_ctrl_c_while_a_script_imports_is_one_line_and_exit_130() -> None:
    """The child signals when the guard is installed and it is still importing; no timing involved."""
    import signal
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import s2s.common.interrupts, sys; print('importing', flush=True); sys.stdin.read(); "
            "import torch")
    # as from a terminal: a suite started in the background (`cmd &`) inherits SIGINT ignored, and the
    # guard rightly stays out of the way there
    child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env={"PYTHONPATH": str(ROOT / "src"), "PATH": ""},
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert child.stdout.readline() == "importing\n"  # the observable event
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 130
    assert err == "error: interrupted (Ctrl-C) while starting; nothing was written\n"


def test_a_user_error_reaches_the_log_file_but_the_console_once(tmp_path: Path, capsys) -> None:
    import logging

    from s2s.common.cli import _fail

    root = logging.getLogger()
    console, logfile = logging.StreamHandler(), logging.FileHandler(tmp_path / "stage.log")
    root.addHandler(console)
    root.addHandler(logfile)
    try:
        with pytest.raises(SystemExit):
            _fail("translate.input=x: file not found")
    finally:
        root.removeHandler(console)
        root.removeHandler(logfile)
        logfile.close()
    assert capsys.readouterr().err == "error: translate.input=x: file not found\n"  # the console: once
    assert "translate.input=x: file not found" in (tmp_path / "stage.log").read_text()

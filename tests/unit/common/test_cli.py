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


# --- Hydra's own errors (composing the config) ------------------------------------------------------

HYDRA_APP = '''
import hydra
from hydra.errors import InstantiationException
from s2s.common.cli import stage_main, user_errors


@hydra.main(config_path="conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg):
    if cfg.fail == "bug":
        raise RuntimeError("a bug in the stage")
    if cfg.fail == "hydra_bug":
        raise InstantiationException("a bug in the stage's instantiate")
    print("ran", cfg.group.name, flush=True)


if __name__ == "__main__":
    stage_main(main)
'''


def run_hydra_app(tmp_path: Path, *args: str, full_error: str | None = None):
    """A minimal stage script (``hydra.main`` + ``user_errors`` + ``stage_main``) with a config group."""
    import subprocess
    import sys

    (tmp_path / "conf" / "group").mkdir(parents=True, exist_ok=True)
    (tmp_path / "conf" / "config.yaml").write_text("defaults:\n  - group: a\n  - _self_\nfail: none\n")
    for name in ("a", "b"):
        (tmp_path / "conf" / "group" / f"{name}.yaml").write_text(f"name: {name}\n")
    (tmp_path / "app.py").write_text(HYDRA_APP)
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    env["PYTHONPATH"] = str(ROOT / "src")
    if full_error is not None:
        env["HYDRA_FULL_ERROR"] = full_error
    command = [sys.executable, "app.py", *args, f"hydra.run.dir={tmp_path}/out", f"hydra.sweep.dir={tmp_path}/multi"]
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["group=nope"], "Could not find 'group/nope'"),
        (["no_such_key=1"], "Could not override 'no_such_key'"),
        (["fail=["], "override 'fail=['"),
        (["--config-name", "nope"], "Cannot find primary config 'nope'"),
    ],
    ids=["group-option", "key", "unparsable", "config-name"],
)
def test_a_config_hydra_cannot_compose_is_one_line_and_exit_2(tmp_path: Path, args: list[str], named: str) -> None:
    result = run_hydra_app(tmp_path, *args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert named in result.stderr
    assert "ran" not in result.stdout


def test_a_sweep_hydra_cannot_compose_is_one_line_before_any_job(tmp_path: Path) -> None:
    result = run_hydra_app(tmp_path, "-m", "group=a,nope")
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "Could not find 'group/nope'" in result.stderr, result.stderr
    assert "ran" not in result.stdout  # Hydra composes every job's config before the first job


def test_a_sweep_runs_every_job_with_the_stages_own_error_handling(tmp_path: Path) -> None:
    result = run_hydra_app(tmp_path, "-m", "group=a,b", "fail=none,bug")
    assert result.stdout.count("ran a") == 1 and "a bug in the stage" in result.stderr
    assert result.returncode == 1 and "error: " not in result.stderr


@pytest.mark.parametrize("fail", ["bug", "hydra_bug"])
def test_a_bug_in_the_stage_keeps_hydras_report_and_exit_1(tmp_path: Path, fail: str) -> None:
    """Only composing is the user's: an exception from the stage's own code, even one of Hydra's
    classes (an instantiate gone wrong), is a bug and is not dressed as a user error."""
    result = run_hydra_app(tmp_path, f"fail={fail}")
    assert result.returncode == 1, result.stderr
    assert "a bug in the stage" in result.stderr
    assert "error: " not in result.stderr
    assert "HYDRA_FULL_ERROR" in result.stderr  # Hydra's usual report ends with its hint


def test_hydra_full_error_set_by_the_user_gives_hydras_full_report(tmp_path: Path) -> None:
    result = run_hydra_app(tmp_path, "group=nope", full_error="1")
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "Could not find 'group/nope'" in result.stderr
    assert not result.stderr.startswith("error: ")

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

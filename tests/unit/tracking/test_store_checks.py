"""The tracking store is checked before any work (issue 34, item 6): a store on a read-only
filesystem passed the check and failed 80 s into training with a SQLAlchemy traceback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import ROOT

CHECK = """
import sys
from s2s.tracking.store import TrackingUnreachable, check_store
try:
    check_store(sys.argv[1], 10)
except TrackingUnreachable as err:
    print("refused:", err)
else:
    print("accepted")
"""


def read_only_check(folder: Path, uri: str) -> str:
    """Run the store check with ``folder`` read-only: a read-only bind mount in a private mount
    namespace where the tests run as root (root writes through file modes), else its mode."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    check = [sys.executable, "-c", CHECK, uri]
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("root without unshare: no way to make a read-only filesystem here")
        script = f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
        command = ["unshare", "-m", "sh", "-c", script, "sh", *check]
    else:
        folder.chmod(0o555)
        command = check
    try:
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    finally:
        folder.chmod(0o755)
    if result.returncode != 0 and "mount" in result.stderr:
        pytest.skip(f"cannot make a read-only mount here: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_a_store_on_a_read_only_filesystem_is_refused_before_any_work(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    uri = f"sqlite:///{folder}/mlflow.db"
    MlflowClient(tracking_uri=uri).create_experiment("existing")  # a real store, as a first run leaves it
    answer = read_only_check(folder, uri)
    assert answer.startswith("refused:") and str(folder / "mlflow.db") in answer, answer
    assert len(answer.splitlines()) == 1


def test_a_writable_store_is_accepted_and_left_unchanged(tmp_path: Path) -> None:
    from s2s.tracking.store import check_store

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(tracking_uri=uri).create_experiment("existing")
    before = (tmp_path / "mlflow.db").read_bytes()
    check_store(uri, 10)
    assert (tmp_path / "mlflow.db").read_bytes() == before

"""The light stages stay light: download and preprocess never import torch (nor Lightning).

Run as the real scripts with ``python -X importtime``, which lists every module the process
imports, so a torch import anywhere (an option check, a helper module, a plugin) fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import ROOT, mirror_dir, tiny_paths

HEAVY = {"torch", "pytorch_lightning", "lightning"}


def imported_modules(stage: str, *overrides: str) -> set[str]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", f"src/{stage}.py", *overrides],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line.split("|")[-1] for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return {name.strip() for name in lines}


def test_download_and_preprocess_do_not_import_torch(tmp_path: Path) -> None:
    paths = tiny_paths(tmp_path)
    download = imported_modules("download", *paths, f"data.mirror={mirror_dir()}")
    assert "s2s.data.download.corpus" in download  # the listing works
    assert not HEAVY & download, sorted(HEAVY & download)
    preprocess = imported_modules("preprocess", *paths)
    assert "s2s.data.preprocess.prepare" in preprocess
    assert not HEAVY & preprocess, sorted(HEAVY & preprocess)

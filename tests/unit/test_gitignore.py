"""What the tools write into the working tree is git-ignored (issue 34, item 14): a newcomer's
``git status`` lists only their own changes."""

from __future__ import annotations

import subprocess

import pytest

from conftest import ROOT

# `dvc plots show` writes dvc_plots/ in the folder it is run from: the project root, or the folder of
# reports/compare/dvc.yaml (docs/tracking.md)
WRITTEN = ["dvc_plots/index.html", "reports/compare/dvc_plots/index.html"]


@pytest.mark.parametrize("path", WRITTEN)
def test_tool_outputs_are_ignored(path: str) -> None:
    result = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT)
    assert result.returncode == 0, f"{path} is not git-ignored"

"""``make headline`` (issue 33 item 2): the committed headline table is what the project's own
``compare`` makes of the committed run folders, without retraining.

The pages' quoted figures are checked against ``docs/results/headline/compare.json`` by
``tests/unit/docs/test_compare_figures.py``; this test checks that folder against the runs behind it.
It skips until the runs are collected (``docs/results/RUNS.md``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

HEADLINE = ROOT / "docs" / "results" / "headline"


@pytest.mark.slow
@pytest.mark.skipif(
    not (HEADLINE / "compare.json").is_file(), reason="the headline runs are not collected yet (docs/results/RUNS.md)"
)
def test_the_committed_headline_table_is_recreated_from_the_committed_runs(tmp_path: Path) -> None:
    env = {**os.environ, "OUT_DIR": str(tmp_path)}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "headline_table.sh")], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    made, committed = (json.loads((d / "compare.json").read_text()) for d in (tmp_path, HEADLINE))
    # every score, spread and significance, and how they were made; the run folders' absolute paths
    # ("systems") depend on where the checkout is
    for key in ("baseline", "settings", "signatures", "skipped_test_sets", "test_sets"):
        assert made[key] == committed[key], key
    assert sorted(made["systems"]) == sorted(committed["systems"])
    # and the compact table the pages paste (no paths in it)
    assert (tmp_path / "headline.md").read_text() == (HEADLINE / "headline.md").read_text()
    # and the runs' validation curves (benchmarks/validation_table.py)
    assert (tmp_path / "validation.md").read_text() == (HEADLINE / "validation.md").read_text()

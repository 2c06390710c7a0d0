"""``make headline`` (issue 33 item 2): each committed comparison table (the headline's, the
Transformer's against the RNN default) is what the project's own ``compare`` makes of the committed
run folders, without retraining.

The pages' quoted figures are checked against each ``docs/results/<table>/compare.json`` by
``tests/unit/docs/test_compare_figures.py``; this test checks that folder against the runs behind it.
A table skips until its runs are collected (``docs/results/RUNS.md``)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

RESULTS = ROOT / "docs" / "results"
# each committed table: its folder and the models it compares (the first is the baseline)
TABLES = {
    "headline": "bilstm_attn bigru_attn bilstm_attn_fused",  # issue 33, `make headline`
    "transformer_r1": "bilstm_attn transformer_r1",  # issue 37 item 4: the Transformer's first recipe
    "transformer_r2": "bilstm_attn transformer_r2",  # its second recipe (length penalty 1.0)
    "transformer": "bilstm_attn transformer",  # the shipped recipe (model=transformer): skips until collected
}


@pytest.mark.slow
@pytest.mark.parametrize("table", sorted(TABLES))
def test_the_committed_headline_table_is_recreated_from_the_committed_runs(table: str, tmp_path: Path) -> None:
    committed_dir = RESULTS / table
    if not (committed_dir / "compare.json").is_file():
        pytest.skip(f"the runs of {table} are not collected yet (docs/results/RUNS.md)")
    env = {**os.environ, "OUT_DIR": str(tmp_path), "MODELS": TABLES[table]}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "headline_table.sh")], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=1800,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    made, committed = (json.loads((d / "compare.json").read_text()) for d in (tmp_path, committed_dir))
    # every score, spread and significance, and how they were made; the run folders' absolute paths
    # ("systems") depend on where the checkout is
    for key in ("baseline", "settings", "signatures", "skipped_test_sets", "test_sets"):
        assert made[key] == committed[key], key
    assert sorted(made["systems"]) == sorted(committed["systems"])
    # and the compact table the pages paste (no paths in it)
    assert (tmp_path / "headline.md").read_text() == (committed_dir / "headline.md").read_text()
    # and the runs' validation curves (benchmarks/validation_table.py)
    assert (tmp_path / "validation.md").read_text() == (committed_dir / "validation.md").read_text()

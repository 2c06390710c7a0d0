"""A Hydra ``-m`` sweep with DDP: Lightning relaunches its DDP processes with ``sys.argv``, so
without care every child would run the whole sweep (``-m`` included). Each job must train once,
on two processes, into its own folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import copy_tiny, run_script

pytestmark = pytest.mark.slow


def test_multirun_sweep_with_ddp_runs_each_job_once(tiny_data: Path, tmp_path: Path) -> None:
    paths = copy_tiny(tiny_data, tmp_path)
    sweep = tmp_path / "sweep"
    result = run_script(
        "train",
        "-m",
        *paths,
        f"hydra.sweep.dir={sweep}",
        "trainer=ddp_cpu",
        "trainer.max_steps=2",
        "logger=none",
        "seed=1,2",
        timeout=500,  # a child running the sweep itself hangs on the second job's process group
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    models = sorted(sweep.glob("*/models/model.pt"))
    assert [p.parent.parent.name for p in models] == ["0", "1"]
    for model in models:
        meta = torch.load(model, map_location="cpu", weights_only=True)["meta"]
        assert meta["global_step"] == 2
    # nothing trained outside the sweep's job folders
    assert not (tmp_path / "models").exists() and not (tmp_path / "checkpoints").exists()
    weights = [torch.load(m, map_location="cpu", weights_only=True)["state_dict"] for m in models]
    assert any(not torch.equal(weights[0][k], weights[1][k]) for k in weights[0]), "seeds 1 and 2 differ"

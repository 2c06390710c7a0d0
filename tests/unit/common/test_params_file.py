"""`make params` writes what `dvc exp run` writes, through Hydra's and OmegaConf's public APIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import CONF, ROOT


@pytest.mark.parametrize("overrides", [[], ["preset=tiny", "optim.lr=0.003"], ["model=bigru_attn", "seed=7"]])
def test_params_file_equals_dvcs_composition(overrides: list[str], tmp_path: Path, monkeypatch) -> None:
    from dvc.utils.hydra import compose_and_dump  # the oracle: what DVC's Hydra composition writes

    from s2s.common.params_file import main

    compose_and_dump(tmp_path / "dvc.yaml", str(CONF), None, "config", str(ROOT), overrides)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").symlink_to(CONF)
    main(overrides)
    assert (tmp_path / "params.yaml").read_bytes() == (tmp_path / "dvc.yaml").read_bytes()


def test_makefile_uses_no_private_dvc_api() -> None:
    assert "dvc.utils" not in (ROOT / "Makefile").read_text()


def test_committed_params_yaml_is_the_default_composition() -> None:
    """One source of truth: the committed params.yaml is conf/ composed with no override (run
    `make params` after editing conf/), so `dvc repro` on a fresh clone runs what conf/ says."""
    from s2s.common.params_file import compose_params

    assert (ROOT / "params.yaml").read_text() == compose_params(CONF), "params.yaml is stale: run `make params`"

"""Shared fixtures: the project root, composed configs and tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
MODEL_CONFIGS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def compose_config(overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])


def small_model_config(name: str, emb: int = 16, enc: int = 16, dec: int = 32, dropout: float = 0.0) -> dict:
    cfg = OmegaConf.to_container(compose_config([f"model={name}"]).model, resolve=True)
    cfg["emb_size"] = emb
    cfg["encoder"]["hidden_size"] = enc
    cfg["decoder"]["hidden_size"] = dec
    for part in ("encoder", "decoder"):
        for key in ("dropout", "emb_dropout", "hidden_dropout"):
            if key in cfg[part]:
                cfg[part][key] = dropout
    return cfg


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(min(2, os.cpu_count() or 1))


def mirror_dir() -> Path | None:
    """The real corpus mirror: $S2S_MIRROR, or skip (offline user) / fail (CI) when absent."""
    value = os.environ.get("S2S_MIRROR")
    if value and Path(value).is_dir():
        return Path(value).resolve()
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the corpus mirror S2S_MIRROR={value!r} is missing")
    pytest.skip("set S2S_MIRROR to a folder holding the Multi30k files (e.g. ../shared/data/multi30k)")
    return None

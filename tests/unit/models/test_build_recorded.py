"""Every model config's state-dict keys, shapes and seeded initial weights, pinned.

Saved model files hold state dicts: a refactor of the model classes that renames a key, changes a
shape or registers modules in another order (which reorders the seeded initialisation, so the
tiny pipeline's weights would change) must fail here.  ``tests/data/model_state.json`` was
recorded before the two decoders got their shared base
(``PYTHONPATH=src:tests python -m unit.models.test_build_recorded`` rewrites it: only do so for a
deliberate, migrated change of the model file format).
"""

from __future__ import annotations

import hashlib
import json
import sys

import pytest
import torch

from s2s.models.build import build_model

from conftest import MODEL_CONFIGS, TEST_DATA, compose_config, small_model_config

PINS = TEST_DATA / "model_state.json"
VOCAB = 101
SEED = 1234


def variants() -> dict[str, dict]:
    """Each conf/model config as composed, plus a small variant with the options that add or drop
    modules (2 decoder layers, tied output with a pre-output projection, no bridge where there is one)."""
    from omegaconf import OmegaConf

    out = {}
    for name in MODEL_CONFIGS:
        out[name] = OmegaConf.to_container(compose_config([f"model={name}"]).model, resolve=True)
        small = small_model_config(name, emb=8, enc=8, dec=12)
        small["decoder"]["num_layers"] = 2
        if "bridge" in small["decoder"]:  # the RNN decoders' (a Transformer has none)
            small["decoder"]["bridge"] = False
        small["tie_output"] = True
        out[f"{name}/2layers_tied_nobridge"] = small
    return out


def observe(cfg: dict) -> dict:
    """Keys with shapes, in state-dict order, and a sha256 of the weights built with ``SEED``."""
    torch.manual_seed(SEED)
    state = build_model(cfg, vocab_size=VOCAB).state_dict()
    digest = hashlib.sha256()
    for key, value in state.items():
        digest.update(key.encode())
        digest.update(value.detach().contiguous().cpu().numpy().tobytes())
    return {"keys": [[k, list(v.shape)] for k, v in state.items()], "sha256": digest.hexdigest()}


@pytest.mark.parametrize("variant", sorted(variants()))
def test_state_dict_keys_shapes_and_seeded_init_unchanged(variant: str) -> None:
    expected = json.loads(PINS.read_text())[variant]
    got = observe(variants()[variant])
    assert got["keys"] == expected["keys"]
    assert got["sha256"] == expected["sha256"]


def test_every_model_config_is_pinned() -> None:
    assert sorted(json.loads(PINS.read_text())) == sorted(variants())


if __name__ == "__main__":  # record the pins (see the module docstring)
    PINS.write_text(json.dumps({k: observe(v) for k, v in sorted(variants().items())}, indent=1) + "\n")
    sys.exit(0)

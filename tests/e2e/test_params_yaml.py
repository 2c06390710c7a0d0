"""One source of truth: params.yaml is conf/ composed by DVC's Hydra composition; stages read it."""

from __future__ import annotations

import configparser

import yaml
from dvc.utils.hydra import compose_and_dump

from conftest import CONF, ROOT, compose_config

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_dvc_composes_params_yaml_from_conf() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / ".dvc/config")
    hydra = {k: v.strip() for k, v in config["hydra"].items()}
    assert hydra == {"enabled": "True", "config_dir": "conf", "config_name": "config"}


def test_params_yaml_equals_the_composed_conf(tmp_path) -> None:
    # exactly what `dvc exp run` writes: a conf/ edit committed without params.yaml fails here
    out = tmp_path / "params.yaml"
    compose_and_dump(out, str(CONF), None, "config", str(ROOT), [])
    assert yaml.safe_load(out.read_text()) == PARAMS, "run `dvc exp run` (or compose) and commit params.yaml"


def lookup(key: str):
    node = PARAMS
    for part in key.split("."):
        node = node[part]
    return node


def test_stages_run_params_yaml_and_declare_existing_keys() -> None:
    for name, stage in DVC["stages"].items():
        assert stage["cmd"].endswith("--config-dir . --config-name params"), name
        for key in stage.get("params", []):
            lookup(key)  # KeyError: a declared param params.yaml does not have
        for dep in stage["deps"]:
            assert not dep.startswith("conf"), f"{name}: {dep}: conf/ reaches stages through params.yaml"
            if not dep.startswith("data/") and dep != "models":
                assert (ROOT / dep).exists(), f"{name}: dependency {dep} does not exist"


def test_train_stage_params_exclude_logging_and_paths() -> None:
    train = set(DVC["stages"]["train"]["params"])
    assert {"model", "optim", "train", "trainer", "seed"} <= train
    assert not train & {"logger", "paths", "decode", "evaluate"}


def test_tiny_preset_composes_with_every_model() -> None:
    for model in ("bilstm_attn", "bigru_attn", "lstm_noattn"):
        cfg = compose_config(["preset=tiny", f"model={model}"])
        assert cfg.model.name == model
        assert cfg.model.encoder.hidden_size == 32
        assert cfg.logger.tracking_uri is None  # anchored at the project root by s2s.tracking.store

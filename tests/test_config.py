"""One source of truth: params.yaml, dvc.yaml and conf/ must agree."""

from __future__ import annotations

import re

import yaml

from conftest import CONF, ROOT, compose_config

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
GROUPS = [k for k in PARAMS if k != "seed"]


def test_params_yaml_equals_conf_defaults() -> None:
    cfg = compose_config()
    choices = {}
    root = yaml.safe_load((CONF / "config.yaml").read_text())
    for entry in root["defaults"]:
        if isinstance(entry, dict):
            choices.update(entry)
    for group in GROUPS:
        assert (CONF / group).is_dir(), f"params.yaml key {group!r} is not a conf/ group"
        assert PARAMS[group] == choices[group], (
            f"params.yaml {group}={PARAMS[group]} but conf default {choices[group]}"
        )
    assert PARAMS["seed"] == cfg.seed


def test_every_group_option_in_params_exists() -> None:
    for group in GROUPS:
        assert (CONF / group / f"{PARAMS[group]}.yaml").is_file()


def test_stage_commands_pass_only_known_params_and_declare_them() -> None:
    for name, stage in DVC["stages"].items():
        used = set(re.findall(r"\$\{(\w+)\}", stage["cmd"]))
        assert used <= set(PARAMS), f"{name}: unknown params {used - set(PARAMS)}"
        declared = set(stage.get("params", []))
        # a param that changes the stage's result must be declared, so DVC re-runs the stage
        assert declared <= used | {"seed"}, f"{name}: declares params it does not pass: {declared - used}"
        for dep in stage["deps"]:
            if not dep.startswith("data/") and dep != "models":
                assert (ROOT / dep).exists(), f"{name}: dependency {dep} does not exist"


def test_tiny_preset_composes_with_every_model() -> None:
    for model in ("bilstm_attn", "bigru_attn", "lstm_noattn"):
        cfg = compose_config(["preset=tiny", f"model={model}"])
        assert cfg.model.name == model
        assert cfg.model.encoder.hidden_size == 32
        assert cfg.trainer.max_epochs == 1

"""conf/: a preset's exceptions for one model (conf/preset_model/<preset>_<model>.yaml) apply to that
model only, after the preset, and a command-line value still wins over both."""

from __future__ import annotations

import pytest
import yaml
from omegaconf import OmegaConf

from s2s.common.config_dict import flatten

from conftest import CONF, compose_config

EXCEPTIONS = sorted((CONF / "preset_model").glob("*.yaml"))


def composed(overrides: list[str]) -> dict[str, object]:
    return flatten(OmegaConf.to_container(compose_config(overrides), resolve=True))


def test_every_exception_names_a_preset_and_a_model_that_exist() -> None:
    """The defaults entry is optional: a misspelt file would be ignored without a word."""
    presets = {p.stem for p in (CONF / "preset").glob("*.yaml")}
    models = {p.stem for p in (CONF / "model").glob("*.yaml")}
    pairs = {f"{p}_{m}" for p in presets for m in models}
    assert EXCEPTIONS, "no exception file: drop the defaults entry or this test"
    assert [p.name for p in EXCEPTIONS if p.stem not in pairs] == []


@pytest.mark.parametrize("path", EXCEPTIONS, ids=lambda p: p.stem)
def test_an_exception_applies_to_its_model_only(path) -> None:
    preset, model = next(
        (p.stem, path.stem[len(p.stem) + 1 :])
        for p in (CONF / "preset").glob("*.yaml")
        if path.stem.startswith(p.stem + "_")
    )
    values = flatten(yaml.safe_load(path.read_text(encoding="utf-8")))
    with_it = composed([f"preset={preset}", f"model={model}"])
    assert {k: with_it[k] for k in values} == values
    # the same keys of another model under the same preset: the preset's own values, not these
    other = next(p.stem for p in sorted((CONF / "model").glob("*.yaml")) if p.stem != model)
    without = composed([f"preset={preset}", f"model={other}"])
    assert any(without.get(k) != v for k, v in values.items()), "the exception leaked to another model"
    # a command-line value wins over the exception
    key = next(k for k, v in values.items() if isinstance(v, float))
    assert composed([f"preset={preset}", f"model={model}", f"{key}=0.25"])[key] == 0.25


def test_the_cpu_preset_raises_the_rnns_dropout_and_leaves_the_transformers_recipe() -> None:
    assert composed([])["model.encoder.dropout"] == 0.3  # the default bilstm_attn
    transformer = composed(["model=transformer"])
    assert transformer["model.encoder.dropout"] == transformer["model.decoder.dropout"] != 0.3


def test_the_transformer_decodes_with_its_own_length_penalty_under_the_cpu_preset() -> None:
    """Chosen on the validation set for the Transformer only (conf/preset_model/cpu_transformer.yaml)."""
    assert composed([])["decode.length_penalty"] == 1.0  # the RNN default: conf/decode/beam.yaml
    assert composed(["model=transformer"])["decode.length_penalty"] == 1.4
    assert composed(["model=transformer", "decode.length_penalty=0.6"])["decode.length_penalty"] == 0.6
    assert composed(["preset=tiny", "model=transformer"])["decode.length_penalty"] == 1.0  # make verify's

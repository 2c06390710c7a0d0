"""s2s.common.options: every shipped config is valid, and each bad option is named with its value."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from s2s.common.io import InputError
from s2s.common.options import RULES, STAGES, check_config, validate

from conftest import CONF


def compose_named(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("preset", group_options("preset"))
@pytest.mark.parametrize("group", ["model", "optim", "trainer", "decode", "logger"])
def test_every_shipped_config_is_valid(preset: str, group: str) -> None:
    for option in group_options(group):
        cfg = compose_named("config", [f"preset={preset}", f"{group}={option}"])
        for stage, sections in STAGES.items():
            if stage != "translate":
                assert check_config(cfg, sections) == [], (preset, group, option, stage)
    assert check_config(compose_named("translate", [f"preset={preset}"]), STAGES["translate"]) == []


def test_rules_cover_options_that_exist() -> None:
    """A rule for a key no config has would silently check nothing (a renamed option)."""
    from omegaconf import OmegaConf

    keys = set()
    for name, extra in (("config", ["optim=adam_plateau"]), ("config", ["model=transformer"]), ("translate", [])):
        cfg = OmegaConf.to_container(compose_named(name, extra), resolve=False)

        def walk(node, prefix=""):
            for k, v in node.items():
                keys.add(prefix + k)
                if isinstance(v, dict):
                    walk(v, prefix + k + ".")

        walk(cfg)
    assert set(RULES) - keys == set()


BAD = [
    ("optim.name=sgd", "train", "optim.name='sgd'"),
    ("trainer.precision=bogus", "train", "trainer.precision='bogus'"),
    ("optim.lr=-1", "train", "optim.lr=-1"),
    ("trainer.max_epochs=abc", "train", "trainer.max_epochs='abc'"),
    ("train.batch.max_sentences=0", "train", "train.batch.max_sentences=0"),
    ("decode.beam_size=0", "evaluate", "decode.beam_size=0"),
    ("decode.n_best=10", "evaluate", "decode.n_best=10"),
    ("preprocess.spm.vocab_size=-5", "preprocess", "preprocess.spm.vocab_size=-5"),
    ("data.max_eval_pairs=-5", "preprocess", "data.max_eval_pairs=-5"),
    ("data.max_train_pairs=0", "preprocess", "data.max_train_pairs=0"),
    ("preprocess.noise.replace_clean=true", "preprocess", "preprocess.noise.replace_clean=true"),
    ("train.batch.max_sentences=null", "train", "train.batch"),
    ("trainer.max_time=30min", "train", "trainer.max_time='30min'"),
    ("data.timeout_s=0", "download", "data.timeout_s=0"),
    ("evaluate.split=dev", "evaluate", "evaluate.split='dev'"),
    ("decode.max_len_a=-1", "evaluate", "decode.max_len_a=-1"),
    ("decode.max_len_a=1e9", "evaluate", "decode.max_len_a=1000000000.0"),
    ("decode.max_len_b=100000000", "evaluate", "decode.max_len_b=100000000"),
    ("decode.beam_size=1000", "evaluate", "decode.beam_size=1000"),
    ("train.val_max_len_b=5000", "train", "train.val_max_len_b=5000"),
    ("train.val_max_len_a=9", "train", "train.val_max_len_a=9"),
    ("model.init_scale=3e38", "train", "model.init_scale=3e+38"),
    ("trainer.accelerator=tpu", "train", "trainer.accelerator='tpu'"),
]


@pytest.mark.parametrize(("override", "stage", "named"), BAD, ids=[b[0] for b in BAD])
def test_bad_option_is_named_with_its_value(override: str, stage: str, named: str) -> None:
    cfg = compose_named("config", [override])
    with pytest.raises(InputError) as info:
        validate(cfg, stage)
    message = str(info.value)
    assert message.startswith(named), message
    assert "\n" not in message


def test_every_bad_option_in_one_line() -> None:
    cfg = compose_named("config", ["optim.lr=0", "trainer.max_epochs=abc"])
    with pytest.raises(InputError) as info:
        validate(cfg, "train")
    assert "optim.lr=0" in str(info.value) and "trainer.max_epochs='abc'" in str(info.value)


def test_a_stage_checks_only_what_it_reads() -> None:
    cfg = compose_named("config", ["optim.name=sgd"])
    validate(cfg, "preprocess")  # the preprocess stage never reads optim


def test_output_length_bounded_by_the_source_cap() -> None:
    """The longest output may be 4x the source cap of the stage: preprocess.filter.max_eval_pieces
    for evaluate, translate.max_src_pieces for translate; a lower cap lowers the bound."""
    validate(compose_named("config", ["decode.max_len_a=2", "decode.max_len_b=200"]), "evaluate")
    cfg = compose_named(
        "config", ["decode.max_len_a=2", "decode.max_len_b=200", "preprocess.filter.max_eval_pieces=64"]
    )
    with pytest.raises(InputError, match=r"^decode\.max_len_b=200: .*preprocess\.filter\.max_eval_pieces=64"):
        validate(cfg, "evaluate")
    cfg = compose_named("translate", ["decode.max_len_b=300", "translate.max_src_pieces=32"])
    with pytest.raises(InputError, match=r"^decode\.max_len_b=300: .*translate\.max_src_pieces=32"):
        validate(cfg, "translate")


@pytest.mark.parametrize("decode", ["beam", "greedy"])
def test_maximum_length_below_the_minimum(decode: str) -> None:
    cfg = compose_named("config", [f"decode={decode}", "decode.max_len_a=0", "decode.max_len_b=0"])
    with pytest.raises(InputError, match=r"^decode\.max_len_b=0: .*empty"):
        validate(cfg, "evaluate")
    cfg = compose_named("config", ["decode.min_len=20"])  # 1.5 * 2 + 10 - 1 = 12 pieces for a one-piece source
    with pytest.raises(InputError, match=r"^decode\.max_len_b=10: .*below decode\.min_len=20"):
        validate(cfg, "evaluate")


def test_translate_options() -> None:
    for overrides, named in (
        (["translate.max_src_pieces=0"], "translate.max_src_pieces=0"),
        (["translate.target_lang=''"], "translate.target_lang=''"),
        (["decode=greedy", "decode.n_best=2"], "decode.n_best=2"),
    ):
        cfg = compose_named("translate", overrides)
        with pytest.raises(InputError, match=named.replace(".", r"\.")):
            validate(cfg, "translate")

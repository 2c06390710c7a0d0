"""benchmarks/bench_joey.py and joey_peer.py: Joey's Transformer YAML is our recipe, the throughput
config and the log parsing (pure functions; Joey itself is not run)."""

from __future__ import annotations

import copy
import sys

import pytest
import yaml
from omegaconf import OmegaConf

from conftest import ROOT, compose_config

sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_joey  # noqa: E402
from joey_peer import JOEY_TRANSFORMER_YAML, PEER_WORK, peer_config, recipe_mismatches  # noqa: E402


@pytest.fixture(scope="module")
def ours() -> dict:
    return OmegaConf.to_container(compose_config(["model=transformer"]), resolve=True)


@pytest.fixture(scope="module")
def joey() -> dict:
    return yaml.safe_load(JOEY_TRANSFORMER_YAML.read_text())


def test_the_committed_joey_transformer_is_our_recipe(ours: dict, joey: dict) -> None:
    assert recipe_mismatches(ours, joey) == []


@pytest.mark.parametrize(
    ("side", "path", "value", "named"),
    [
        ("ours", ("model", "decoder", "num_heads"), 8, "model.decoder.num_heads"),
        ("ours", ("model", "tie_output"), False, "model.tied_softmax"),
        ("ours", ("train", "label_smoothing"), 0.0, "training.label_smoothing"),
        ("ours", ("optim", "betas"), [0.9, 0.999], "training.adam_betas"),
        ("ours", ("train", "batch", "max_tokens"), 4096, "train.batch.max_tokens"),
        ("ours", ("optim", "warmup_steps"), 100, "optim.warmup_steps"),
        ("ours", ("decode", "length_penalty"), 1.0, "decode.length_penalty"),
        ("joey", ("model", "encoder", "layer_norm"), "post", "model.encoder.layer_norm"),
        ("joey", ("model", "encoder", "embeddings", "embedding_dim"), 512, "model.encoder.embeddings.embedding_dim"),
        ("joey", ("training", "batch_type"), "token", "training.batch_type"),
    ],
)
def test_a_changed_key_is_named(ours: dict, joey: dict, side: str, path: tuple, value, named: str) -> None:
    changed = {"ours": copy.deepcopy(ours), "joey": copy.deepcopy(joey)}
    node = changed[side]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    found = recipe_mismatches(changed["ours"], changed["joey"])
    assert len(found) == 1 and named in found[0], found


def test_peer_config_moves_every_path_of_the_transformer_yaml(tmp_path) -> None:
    cfg = peer_config(tmp_path / "no-peer", tmp_path / "w", "transformer")  # the RNN's folder is not read
    text = yaml.safe_dump(cfg)
    assert PEER_WORK not in text
    assert cfg["data"]["src"]["tokenizer_cfg"]["model_file"] == str(tmp_path / "w" / "data" / "spm8k.model")
    assert cfg["model"]["encoder"]["type"] == "transformer"


def test_train_config_logs_every_window_and_never_validates(joey: dict, tmp_path) -> None:
    before = copy.deepcopy(joey)
    cfg = bench_joey.train_config(joey, tmp_path / "m", 7)
    assert cfg["training"]["logging_freq"] == 7
    assert cfg["training"]["validation_freq"] >= 10**9
    assert cfg["training"]["overwrite"] is True
    assert cfg["model_dir"] == str(tmp_path / "m")
    assert joey == before  # the loaded YAML is left as it was
    assert {k: v for k, v in cfg["training"].items() if k not in ("logging_freq", "validation_freq")} == {
        k: v for k, v in joey["training"].items() if k not in ("logging_freq", "validation_freq")
    }


def test_joey_windows_reads_tokens_per_sec_and_parameters(tmp_path) -> None:
    log = tmp_path / "train.log"
    assert bench_joey.joey_windows(log) == ([], None)
    log.write_text(
        "2026-12-06 22:38:28,569 - INFO - joeynmt.model - Total params: 7578624\n"
        "2026-12-06 22:42:07,109 - INFO - joeynmt.training - Epoch   1, Step:       10, Batch Loss:     6.769368, "
        "Batch Acc: 0.016469, Tokens per Sec:      179, Lr: 0.000050\n"
        "2026-12-06 22:42:45,927 - INFO - joeynmt.training - Epoch   1, Step:       20, Batch Loss:     6.506858, "
        "Batch Acc: 0.033965, Tokens per Sec:      262, Lr: 0.000100\n"
    )
    assert bench_joey.joey_windows(log) == ([179.0, 262.0], 7578624)

"""s2s.models.build: pieces connected by size, shared and tied tables, the initialisation, parameter count,
attention variants as a config switch."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from s2s.models.build import build_model, count_parameters, init_weights
from s2s.tokens import PAD_ID

from conftest import compose_config, small_model_config

VOCAB = 30


def test_sizes_connect_the_pieces() -> None:
    cfg = small_model_config("bilstm_attn", emb=8, enc=6, dec=10)
    model = build_model(cfg, VOCAB)
    assert model.encoder.output_size == 12  # bidirectional: 2 x 6
    assert model.decoder.att_layer.in_features == 10 + 12
    assert model.decoder.bridge.in_features == 12
    assert model.decoder.output_layer.out_features == VOCAB
    assert model.decoder.attention is not None
    assert build_model(small_model_config("lstm_noattn"), VOCAB).decoder.attention is None


def test_shared_embeddings_and_tied_output() -> None:
    cfg = small_model_config("bilstm_attn", emb=8, dec=10)
    shared = build_model({**cfg, "share_embeddings": True, "tie_output": True}, VOCAB)
    assert shared.encoder.embedding is shared.decoder.embedding
    assert shared.decoder.output_layer.weight is shared.decoder.embedding.weight
    assert shared.decoder.pre_output.in_features == 10 and shared.decoder.pre_output.out_features == 8
    separate = build_model({**cfg, "share_embeddings": False, "tie_output": False}, VOCAB)
    assert separate.encoder.embedding is not separate.decoder.embedding
    assert separate.decoder.pre_output is None
    # one embedding table fewer, minus the output layer it replaces, plus the pre-output projection
    assert count_parameters(separate) - count_parameters(shared) == VOCAB * 8 + VOCAB * 10 - 10 * 8


def test_init_is_uniform_with_zero_biases_and_padding_row() -> None:
    torch.manual_seed(0)
    model = build_model({**small_model_config("bigru_attn"), "init_scale": 0.05}, VOCAB)
    for name, param in model.named_parameters():
        if "bias" in name:
            assert torch.count_nonzero(param) == 0, name
        else:
            assert param.abs().max() <= 0.05, name
    assert torch.count_nonzero(model.encoder.embedding.weight[PAD_ID]) == 0
    assert model.encoder.embedding.weight[PAD_ID + 1].abs().sum() > 0


def test_init_weights_and_count_parameters_by_hand() -> None:
    net = nn.Sequential(nn.Linear(3, 2), nn.Embedding(4, 2, padding_idx=0))
    init_weights(net, 0.5)
    assert torch.equal(net[0].bias, torch.zeros(2)) and torch.equal(net[1].weight[0], torch.zeros(2))
    assert count_parameters(net) == 3 * 2 + 2 + 4 * 2
    net[1].weight.requires_grad_(False)
    assert count_parameters(net) == 8


def test_a_hydra_config_builds_the_same_model_as_a_plain_dict() -> None:
    cfg = small_model_config("bilstm_attn_fused")
    torch.manual_seed(3)
    plain = build_model(cfg, VOCAB).state_dict()
    torch.manual_seed(3)
    composed = build_model(OmegaConf.create(cfg), VOCAB).state_dict()
    assert plain.keys() == composed.keys()
    assert all(torch.equal(plain[k], composed[k]) for k in plain)


def test_an_unknown_piece_is_an_error() -> None:
    cfg = small_model_config("bilstm_attn")
    cfg["decoder"]["_target_"] = "s2s.models.decoder.NoSuchDecoder"
    with pytest.raises(Exception, match="NoSuchDecoder"):
        build_model(cfg, VOCAB)


@pytest.mark.parametrize("attention", ["additive", "dot", "general", "scaled_dot"])
def test_attention_variants_are_a_config_switch(attention: str) -> None:
    cfg = OmegaConf.to_container(compose_config([f"model/attention={attention}"]).model, resolve=True)
    cfg["decoder"]["hidden_size"] = 2 * cfg["encoder"]["hidden_size"]  # dot needs equal sizes
    model = build_model(cfg, vocab_size=50)
    assert type(model.decoder.attention).__name__.lower().startswith(attention.replace("_", "")[:5])


def test_tied_and_shared_embeddings() -> None:
    cfg = small_model_config("bilstm_attn")
    cfg.update(share_embeddings=True, tie_output=True)
    model = build_model(cfg, vocab_size=30)
    assert model.encoder.embedding is model.decoder.embedding
    assert model.decoder.output_layer.weight is model.decoder.embedding.weight
    cfg.update(share_embeddings=False, tie_output=False)
    untied = build_model(cfg, vocab_size=30)
    assert untied.encoder.embedding is not untied.decoder.embedding
    assert untied.decoder.output_layer.weight is not untied.decoder.embedding.weight

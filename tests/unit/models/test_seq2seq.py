"""Encoder, attention and decoder pieces, and every conf/model config."""

from __future__ import annotations

import pytest
import torch

from s2s.models.attention import AdditiveAttention, DotAttention, GeneralAttention, ScaledDotAttention
from s2s.models.build import build_model
from s2s.models.encoder import RNNEncoder

from conftest import MODEL_CONFIGS, small_model_config

ATTENTIONS = [AdditiveAttention, DotAttention, GeneralAttention, ScaledDotAttention]


def padded_batch(lengths: list[int], vocab: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for i, n in enumerate(lengths):
        src[i, :n] = torch.randint(4, vocab, (n,), generator=g)
    return src, torch.tensor(lengths)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_encoder_alone_equals_in_padded_batch(rnn_type: str) -> None:
    torch.manual_seed(0)
    enc = RNNEncoder(torch.nn.Embedding(20, 8, padding_idx=0), rnn_type, 12, num_layers=2).eval()
    src, lengths = padded_batch([3, 7, 5])
    out, final = enc(src, lengths)
    alone_out, alone_final = enc(src[:1, :3], lengths[:1])
    torch.testing.assert_close(out[0, :3], alone_out[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(final[0], alone_final[0], atol=1e-6, rtol=1e-5)
    assert torch.all(out[0, 3:] == 0), "padded positions must not carry states"


@pytest.mark.parametrize("cls", ATTENTIONS)
def test_attention_masks_padding_exactly(cls: type) -> None:
    torch.manual_seed(0)
    att = cls(16, 16)
    memory = torch.randn(3, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    context, weights = att(torch.randn(3, 16), att.prepare(memory), memory, mask)
    assert torch.all(weights[~mask] == 0.0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert context.shape == (3, 16)
    # the context of a sentence with one real position is exactly that position's memory
    torch.testing.assert_close(context[2], memory[2, 0])


def test_dot_attention_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="general"):
        DotAttention(8, 16)


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_builds_and_trains_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(small_model_config(name), vocab_size=30)
    src, lengths = padded_batch([4, 6], vocab=30)
    tgt_in = torch.randint(4, 30, (2, 5))
    logits = model(src, lengths, tgt_in)
    assert logits.shape == (2, 5, 30)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 30), torch.randint(4, 30, (10,)))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("attention", ["additive", "dot", "general", "scaled_dot"])
def test_attention_variants_are_a_config_switch(attention: str) -> None:
    from omegaconf import OmegaConf

    from conftest import compose_config

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

"""Assemble a :class:`~s2s.models.seq2seq.Seq2Seq` from a ``model`` config.

The config names each piece by ``_target_`` (encoder, attention, decoder), so a new piece is a new
class plus a YAML file; this module supplies only what the pieces cannot know alone: the
vocabulary size, the shared embedding table and the sizes that connect them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.utils import instantiate
from torch import nn

from s2s.common.config_dict import plain
from s2s.models.seq2seq import Seq2Seq
from s2s.tokens import PAD_ID


def build_model(model_cfg: Mapping[str, Any], vocab_size: int) -> Seq2Seq:
    cfg = dict(plain(model_cfg))
    emb_size = cfg["emb_size"]
    src_embed = nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
    # With a joint vocabulary, sharing one table between encoder and decoder halves the embeddings.
    tgt_embed = (
        src_embed
        if cfg.get("share_embeddings", False)
        else nn.Embedding(vocab_size, emb_size, padding_idx=PAD_ID)
    )
    encoder = instantiate(cfg["encoder"], embedding=src_embed)
    dec_cfg = cfg["decoder"]
    attention = None  # the RNN decoders' attention; a Transformer's layers hold their own
    if (cfg.get("attention") or {}).get("_target_"):
        attention = instantiate(
            cfg["attention"], query_size=dec_cfg["hidden_size"], memory_size=encoder.output_size
        )
    decoder = instantiate(
        dec_cfg,
        embedding=tgt_embed,
        encoder_size=encoder.output_size,
        attention=attention,
        tie_output=cfg.get("tie_output", False),
    )
    model = Seq2Seq(encoder, decoder, pad_id=PAD_ID)
    init = cfg.get("init", "uniform")
    if init == "uniform":
        init_weights(model, cfg.get("init_scale", 0.1))
    elif init == "xavier":
        init_xavier(model)
    else:
        raise ValueError(f"model.init={init!r}: expected 'uniform' or 'xavier'")
    return model


def init_weights(model: nn.Module, scale: float) -> None:
    """Uniform init in [-scale, scale] for all weights, zero biases, zero padding embedding."""
    for name, param in model.named_parameters():
        if "bias" in name:
            nn.init.zeros_(param)
        else:
            nn.init.uniform_(param, -scale, scale)
    for module in model.modules():
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()


def init_xavier(model: nn.Module) -> None:
    """The Transformer's init: Glorot-uniform matrices, zero biases, unit layer norms, and embeddings
    drawn from N(0, 1/E) (scaled by sqrt(E) at the input, so of unit variance there); zero padding.

    Each parameter is drawn once, by the first module that holds it, in module order: a tied output
    layer keeps the embedding's draw.
    """
    done: set[int] = set()
    for module in model.modules():
        params = [p for p in module.parameters(recurse=False) if id(p) not in done]
        done.update(id(p) for p in params)
        for param in params:
            if isinstance(module, nn.Embedding):
                nn.init.normal_(param, 0.0, module.embedding_dim**-0.5)
            elif isinstance(module, nn.LayerNorm) and param is module.weight:
                nn.init.ones_(param)
            elif param.dim() >= 2:
                nn.init.xavier_uniform_(param)
            else:
                nn.init.zeros_(param)
        if isinstance(module, nn.Embedding) and module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

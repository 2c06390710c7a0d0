"""The Transformer encoder: a stack of pre-norm self-attention layers (plain PyTorch)."""

from __future__ import annotations

import torch
from torch import nn

from s2s.models.layer_norm import LayerNorm
from s2s.models.positions import TransformerInput
from s2s.models.transformer_layers import EncoderLayer


def length_mask(src: torch.Tensor, src_lengths: torch.Tensor) -> torch.Tensor:
    """(B, S) True at the first ``src_lengths`` positions of each row."""
    positions = torch.arange(src.size(1), device=src.device)
    return positions.unsqueeze(0) < src_lengths.to(src.device).unsqueeze(1)


class TransformerEncoder(nn.Module):
    """``num_layers`` layers of width ``hidden_size`` over scaled embeddings plus sinusoidal positions.

    Padding is masked out of every attention, so a sentence's outputs do not depend on the padding
    beside it (up to float rounding).  Outputs pass a final layer norm (pre-norm stacks need it).
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        hidden_size: int = 256,
        num_layers: int = 3,
        num_heads: int = 4,
        ff_size: int = 1024,
        dropout: float = 0.1,
        emb_dropout: float = 0.1,
        attention_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
    ):
        super().__init__()
        self.embedding = embedding
        self.input = TransformerInput(embedding.embedding_dim, hidden_size, emb_dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(hidden_size, num_heads, ff_size, dropout, attention_dropout, hidden_dropout)
            for _ in range(num_layers)
        )
        self.final_norm = LayerNorm(hidden_size)
        self.output_size = hidden_size

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, None]:
        """``src`` (B, S) ids -> outputs (B, S, D), and no final state (the decoder needs none)."""
        mask = length_mask(src, src_lengths)[:, None, None, :]
        x = self.input(self.embedding(src))
        for layer in self.layers:
            x = layer(x, mask)
        return self.final_norm(x), None

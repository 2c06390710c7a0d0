"""Pre-norm Transformer layers (plain PyTorch): each block reads a layer-normed copy of the stream
and adds its output back, ``x + dropout(block(norm(x)))`` (Xiong et al. 2020; the stack ends with
one more norm).  Pre-norm trains without the long warmup post-norm layers need, which suits a small
recipe on a CPU.

Dropout keys, as in the RNN models' configs: ``dropout`` on every block's output before the
residual sum, ``attention_dropout`` on the attention weights, ``hidden_dropout`` on the
feed-forward's hidden layer (after the ReLU).
"""

from __future__ import annotations

import torch
from torch import nn

from s2s.models.dropout import Dropout
from s2s.models.layer_norm import LayerNorm
from s2s.models.multihead import MultiHeadAttention


class FeedForward(nn.Module):
    """Position-wise ``W2 dropout(relu(W1 x))``."""

    def __init__(self, size: int, ff_size: int, hidden_dropout: float = 0.0):
        super().__init__()
        self.inner = nn.Linear(size, ff_size)
        self.outer = nn.Linear(ff_size, size)
        self.dropout = Dropout(hidden_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.outer(self.dropout(torch.relu(self.inner(x))))


class EncoderLayer(nn.Module):
    """Self-attention over the source (padding masked), then the feed-forward."""

    def __init__(
        self, size: int, num_heads: int, ff_size: int, dropout: float, attention_dropout: float, hidden_dropout: float
    ):
        super().__init__()
        self.self_norm = LayerNorm(size)
        self.self_attention = MultiHeadAttention(size, num_heads, dropout=attention_dropout)
        self.ff_norm = LayerNorm(size)
        self.feed_forward = FeedForward(size, ff_size, hidden_dropout)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``x`` (B, S, D); ``mask`` (B, 1, 1, S) True at real source positions."""
        h = self.self_norm(x)
        keys, values = self.self_attention.keys_values(h)
        x = x + self.dropout(self.self_attention(h, keys, values, mask)[0])
        return x + self.dropout(self.feed_forward(self.ff_norm(x)))


class DecoderLayer(nn.Module):
    """Causal self-attention over the target prefix, attention over the source, then the feed-forward."""

    def __init__(
        self,
        size: int,
        memory_size: int,
        num_heads: int,
        ff_size: int,
        dropout: float,
        attention_dropout: float,
        hidden_dropout: float,
    ):
        super().__init__()
        self.self_norm = LayerNorm(size)
        self.self_attention = MultiHeadAttention(size, num_heads, dropout=attention_dropout)
        self.cross_norm = LayerNorm(size)
        self.cross_attention = MultiHeadAttention(size, num_heads, memory_size, dropout=attention_dropout)
        self.ff_norm = LayerNorm(size)
        self.feed_forward = FeedForward(size, ff_size, hidden_dropout)
        self.dropout = Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        past: tuple[torch.Tensor, torch.Tensor] | None,
        causal: torch.Tensor | None,
        source: tuple[torch.Tensor, torch.Tensor],
        src_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x`` (B, T, D) at the positions after the ``past`` keys and values (B, H, t, D/H) each.

        ``causal`` (T, t + T) masks later positions (None for one new position: it may see them all);
        ``source`` holds the source's keys and values, ``src_mask`` (B, 1, 1, S) its real positions.
        Returns the new stream, the keys and values of all t + T positions, and the source weights
        (B, H, T, S).
        """
        h = self.self_norm(x)
        keys, values = self.self_attention.keys_values(h)
        if past is not None:
            keys, values = torch.cat([past[0], keys], dim=2), torch.cat([past[1], values], dim=2)
        x = x + self.dropout(self.self_attention(h, keys, values, causal)[0])
        attended, weights = self.cross_attention(self.cross_norm(x), source[0], source[1], src_mask)
        x = x + self.dropout(attended)
        x = x + self.dropout(self.feed_forward(self.ff_norm(x)))
        return x, keys, values, weights

"""Multi-head scaled dot-product attention (Vaswani et al. 2017), plain PyTorch.

Keys and values are computed apart from the queries (:meth:`MultiHeadAttention.keys_values`): a
decoder computes the source's once per sentence, and its own one target position at a time,
caching those of earlier positions.  The weights go through the project's softmax (its gradient
does not depend on the thread count) and the project's dropout (the same mask on every CPU).
Masked positions (padding, later target positions) get exactly zero weight.
"""

from __future__ import annotations

import torch
from torch import nn

from s2s.models.dropout import Dropout
from s2s.models.softmax import softmax


class MultiHeadAttention(nn.Module):
    """``num_heads`` heads of width ``size / num_heads``; keys and values from ``memory_size`` inputs."""

    def __init__(self, size: int, num_heads: int, memory_size: int | None = None, dropout: float = 0.0):
        super().__init__()
        if size % num_heads:
            raise ValueError(f"hidden_size={size} is not a multiple of num_heads={num_heads}")
        self.size, self.num_heads, self.head_size = size, num_heads, size // num_heads
        self.scale = self.head_size**-0.5
        self.query = nn.Linear(size, size)
        self.key_value = nn.Linear(memory_size or size, 2 * size)  # keys and values in one matmul
        self.out = nn.Linear(size, size)
        self.dropout = Dropout(dropout)

    def keys_values(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (B, S, M) -> keys and values, (B, H, S, D/H) each."""
        batch, length, _ = x.shape
        kv = self.key_value(x).view(batch, length, 2, self.num_heads, self.head_size).permute(2, 0, 3, 1, 4)
        return kv[0], kv[1]

    def forward(
        self, x: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries from ``x`` (B, T, D); ``mask`` broadcasts to (B, H, T, S), True where a query may look.

        Returns the output (B, T, D) and the weights (B, H, T, S).
        """
        batch, length, _ = x.shape
        q = self.query(x).view(batch, length, self.num_heads, self.head_size).transpose(1, 2) * self.scale
        scores = torch.matmul(q, keys.transpose(-1, -2))
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        weights = softmax(scores, dim=-1)
        context = torch.matmul(self.dropout(weights), values)
        return self.out(context.transpose(1, 2).reshape(batch, length, self.size)), weights

"""The Transformer's input: scaled token embeddings plus fixed sinusoidal positions (plain PyTorch).

Positions are Vaswani et al. 2017's sinusoids, ``sin(p / 10000^(2i/d))`` at even and ``cos`` at odd
features.  They are a table, not parameters: nothing of them goes into a model file.  The table is
computed in float64 and rounded once, and a position reads the same row whether it is encoded
alone (one search step) or among all target positions (teacher forcing), so cached decoding and
training see the very same position vectors.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from s2s.models.dropout import Dropout


def sinusoids(length: int, size: int) -> torch.Tensor:
    """(length, size) float32 table of sinusoidal position vectors."""
    positions = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    rates = torch.exp(torch.arange(0, size, 2, dtype=torch.float64) * (-math.log(10000.0) / size))
    table = torch.zeros(length, size, dtype=torch.float64)
    table[:, 0::2] = torch.sin(positions * rates)
    table[:, 1::2] = torch.cos(positions * rates)[:, : size // 2]
    return table.float()


class TransformerInput(nn.Module):
    """Embeddings (B, T, E) -> ``sqrt(E)`` * embeddings, projected to the model width when E differs,
    plus the positions ``offset .. offset + T - 1``, then dropout."""

    def __init__(self, emb_size: int, size: int, dropout: float = 0.0):
        super().__init__()
        self.scale = math.sqrt(emb_size)
        self.projection = nn.Linear(emb_size, size, bias=False) if emb_size != size else None
        self.dropout = Dropout(dropout)
        self.size = size
        self._table = sinusoids(256, size)  # a plain attribute: not in the state dict, not a DDP buffer

    def positions(self, offset: int, length: int, device: torch.device) -> torch.Tensor:
        needed = offset + length
        if needed > self._table.size(0):
            self._table = sinusoids(max(needed, 2 * self._table.size(0)), self.size)
        if self._table.device != device:
            self._table = self._table.to(device)
        return self._table[offset:needed]

    def forward(self, emb: torch.Tensor, offset: int = 0) -> torch.Tensor:
        x = emb * self.scale
        if self.projection is not None:
            x = self.projection(x)
        return self.dropout(x + self.positions(offset, emb.size(1), emb.device).to(x.dtype))

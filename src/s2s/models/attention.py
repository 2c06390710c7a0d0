"""Attention scoring functions, one class each (plain PyTorch).

All share one interface: ``prepare(memory)`` computes whatever depends only on the encoder
outputs (once per sentence), ``forward(query, keys, memory, mask)`` scores one decoder step.
Padded source positions get exactly zero weight: their scores are set to -inf before softmax.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from s2s.models.softmax import softmax


class Attention(nn.Module):
    """Base class: subclasses implement :meth:`score`."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__()
        self.query_size, self.memory_size = query_size, memory_size

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        """Keys for all source positions, (B, S, K). Identity by default."""
        return memory

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``query`` (B, Q), ``keys`` (B, S, K), ``memory`` (B, S, M), ``mask`` (B, S) True where real.

        Returns the context (B, M) and the weights (B, S).
        """
        scores = self.score(query, keys).masked_fill(~mask, float("-inf"))
        weights = softmax(scores, dim=-1)
        context = torch.bmm(weights.unsqueeze(1), memory).squeeze(1)
        return context, weights

    def score_all(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Scores for all target steps at once: ``query`` (B, T, Q), ``keys`` (B, S, K) -> (B, T, S).

        The default runs :meth:`score` on the B * T steps as one batch; subclasses override it
        with a cheaper form that does not copy the keys for every step.
        """
        batch, steps, _ = query.shape
        src_len = keys.size(1)
        expanded = keys.unsqueeze(1).expand(batch, steps, src_len, keys.size(-1)).reshape(batch * steps, src_len, -1)
        return self.score(query.reshape(batch * steps, -1), expanded).view(batch, steps, src_len)

    def forward_all(
        self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`forward` for all target steps at once (teacher forcing when the queries do not
        depend on earlier contexts): ``query`` (B, T, Q) -> context (B, T, M), weights (B, T, S)."""
        scores = self.score_all(query, keys).masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = softmax(scores, dim=-1)
        return torch.bmm(weights, memory), weights


class AdditiveAttention(Attention):
    """Bahdanau et al. 2015: v^T tanh(W_q q + W_k k)."""

    def __init__(self, query_size: int, memory_size: int, hidden_size: int | None = None):
        super().__init__(query_size, memory_size)
        hidden_size = hidden_size or query_size
        self.key_layer = nn.Linear(memory_size, hidden_size, bias=False)
        self.query_layer = nn.Linear(query_size, hidden_size, bias=False)
        self.energy = nn.Linear(hidden_size, 1, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_layer(memory)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return self.energy(torch.tanh(self.query_layer(query).unsqueeze(1) + keys)).squeeze(-1)

    def score_all(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return self.energy(torch.tanh(self.query_layer(query).unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)


class DotAttention(Attention):
    """Luong et al. 2015 "dot": q . k; needs equal query and memory sizes."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__(query_size, memory_size)
        if query_size != memory_size:
            raise ValueError(
                f"dot attention needs decoder hidden size ({query_size}) == encoder output size ({memory_size}); "
                "use 'general' or 'scaled_dot' attention instead"
            )

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)

    def score_all(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class GeneralAttention(Attention):
    """Luong et al. 2015 "general": q^T W k."""

    def __init__(self, query_size: int, memory_size: int):
        super().__init__(query_size, memory_size)
        self.key_layer = nn.Linear(memory_size, query_size, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_layer(memory)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(keys, query.unsqueeze(-1)).squeeze(-1)

    def score_all(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(query, keys.transpose(1, 2))


class ScaledDotAttention(Attention):
    """Vaswani et al. 2017 scoring: (W_q q) . (W_k k) / sqrt(d)."""

    def __init__(self, query_size: int, memory_size: int, hidden_size: int | None = None):
        super().__init__(query_size, memory_size)
        self.dim = hidden_size or query_size
        self.key_layer = nn.Linear(memory_size, self.dim, bias=False)
        self.query_layer = nn.Linear(query_size, self.dim, bias=False)

    def prepare(self, memory: torch.Tensor) -> torch.Tensor:
        return self.key_layer(memory)

    def score(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        q = self.query_layer(query).unsqueeze(-1)
        return torch.bmm(keys, q).squeeze(-1) / math.sqrt(self.dim)

    def score_all(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        return torch.bmm(self.query_layer(query), keys.transpose(1, 2)) / math.sqrt(self.dim)

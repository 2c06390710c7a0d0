"""The Transformer decoder, with cached keys and values for search (plain PyTorch).

Teacher forcing runs all target positions at once under a causal mask.  A search step runs one new
position: each layer computes the keys and values of that position only and attends over them
together with those of the earlier positions, cached in :class:`TransformerState`.  The state's
tensors are indexed by batch row first, like the RNN decoders' :class:`~s2s.models.decoder.DecoderState`,
so beam search reorders the cache with the beams by the same ``index_select``; the source's keys and
values, computed once per sentence, pass through every step unchanged (search only compacts them).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from s2s.models.attention import Attention
from s2s.models.decoder import output_layers
from s2s.models.layer_norm import LayerNorm
from s2s.models.positions import TransformerInput
from s2s.models.transformer_layers import DecoderLayer


@dataclass
class TransformerState:
    """What a decoding step needs, batch-first: the cache of the ``t`` positions decoded so far and the source."""

    self_keys: torch.Tensor  # (B, L, H, t, D/H) per layer
    self_values: torch.Tensor  # (B, L, H, t, D/H)
    cross_keys: torch.Tensor  # (B, L, H, S, D/H) the source's keys, per layer
    cross_values: torch.Tensor  # (B, L, H, S, D/H)
    mask: torch.Tensor  # (B, S) True at real source positions

    @property
    def steps(self) -> int:
        """Target positions decoded so far (the position of the next token)."""
        return self.self_keys.size(3)

    def index_select(self, index: torch.Tensor) -> TransformerState:
        return TransformerState(**{f.name: getattr(self, f.name).index_select(0, index) for f in fields(self)})


class TransformerDecoder(nn.Module):
    """``num_layers`` pre-norm layers of width ``hidden_size``; the output layer reads the final norm.

    ``attention`` must be None (``model/attention: none``): the layers hold their own multi-head
    attention.  ``tie_output`` shares the target embedding table with the output layer.
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        encoder_size: int,
        attention: Attention | None = None,
        hidden_size: int = 256,
        num_layers: int = 3,
        num_heads: int = 4,
        ff_size: int = 1024,
        dropout: float = 0.1,
        emb_dropout: float = 0.1,
        attention_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        tie_output: bool = False,
    ):
        super().__init__()
        if attention is not None:
            raise ValueError("the Transformer decoder attends with its own layers: use model/attention=none")
        self.embedding = embedding
        self.hidden_size, self.num_layers, self.num_heads = hidden_size, num_layers, num_heads
        self.input = TransformerInput(embedding.embedding_dim, hidden_size, emb_dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(hidden_size, encoder_size, num_heads, ff_size, dropout, attention_dropout, hidden_dropout)
            for _ in range(num_layers)
        )
        self.final_norm = LayerNorm(hidden_size)
        self.pre_output, self.output_layer = output_layers(embedding, hidden_size, tie_output)

    @property
    def has_attention(self) -> bool:
        """Search can return source attention weights (the last layer's, averaged over heads)."""
        return True

    def init_state(self, memory: torch.Tensor, final: torch.Tensor | None, mask: torch.Tensor) -> TransformerState:
        """The source's keys and values for every layer; an empty cache (``final`` is unused)."""
        cross = [layer.cross_attention.keys_values(memory) for layer in self.layers]
        keys = torch.stack([k for k, _ in cross], dim=1)
        empty = keys.new_zeros(keys.size(0), self.num_layers, self.num_heads, 0, keys.size(-1))
        return TransformerState(empty, empty, keys, torch.stack([v for _, v in cross], dim=1), mask)

    def _run(
        self, x: torch.Tensor, state: TransformerState, causal: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, TransformerState]:
        """All layers over ``x`` (B, T, D), the positions after the cached ones: the final-normed
        stream, the last layer's source weights (B, H, T, S) and the state with the cache extended."""
        src_mask = state.mask[:, None, None, :]
        keys, values, weights = [], [], None
        for i, layer in enumerate(self.layers):
            past = (state.self_keys[:, i], state.self_values[:, i]) if state.steps else None
            source = (state.cross_keys[:, i], state.cross_values[:, i])
            x, k, v, weights = layer(x, past, causal, source, src_mask)
            keys.append(k)
            values.append(v)
        new_state = TransformerState(
            torch.stack(keys, dim=1), torch.stack(values, dim=1), state.cross_keys, state.cross_values, state.mask
        )
        return self.final_norm(x), weights, new_state

    def compile_step(self, mode: str = "default") -> None:
        """Compile the layer stack that training (all positions) and search (one position) both run."""
        self._run = torch.compile(self._run, mode=mode, dynamic=True)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.pre_output is not None:
            x = self.pre_output(x)
        return self.output_layer(x)

    def forward(self, tgt_in: torch.Tensor, state: TransformerState) -> torch.Tensor:
        """Teacher forcing: ``tgt_in`` (B, T) -> logits (B, T, V), all positions at once (causal mask)."""
        steps = tgt_in.size(1)
        causal = torch.ones(steps, steps, dtype=torch.bool, device=tgt_in.device).tril()
        x, _, _ = self._run(self.input(self.embedding(tgt_in)), state, causal)
        return self.logits(x)

    def step(
        self, prev_tokens: torch.Tensor, state: TransformerState
    ) -> tuple[torch.Tensor, TransformerState, torch.Tensor]:
        """One search step: ``prev_tokens`` (B,) -> logits (B, V), the state with the cache extended
        by this position, and the last layer's source weights averaged over heads (B, S)."""
        x = self.input(self.embedding(prev_tokens).unsqueeze(1), offset=state.steps)
        x, weights, state = self._run(x, state, None)
        return self.logits(x[:, 0]), state, weights[:, :, 0].mean(dim=1)

"""Recurrent decoder with input feeding and optional attention (plain PyTorch).

Each step: the RNN reads [embedding of the previous token; previous attentional vector] (input
feeding, Luong et al. 2015), its top output queries the attention over the encoder outputs, and
tanh(W [query; context]) is the attentional vector the output layer reads.  Without attention the
context is a fixed vector, the encoder's final state, as in the classic Cho et al. 2014 decoder.

All per-step state lives in :class:`DecoderState`, whose tensors are indexed by batch row first,
so search can reorder hypotheses with one ``index_select``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import nn

from s2s.models.attention import Attention
from s2s.models.encoder import make_rnn


@dataclass
class DecoderState:
    """Everything a decoding step needs, batch-first. ``cell`` is None for GRUs; ``keys`` may be None."""

    hidden: torch.Tensor  # (B, L, H)
    cell: torch.Tensor | None  # (B, L, H)
    att_vector: torch.Tensor  # (B, H) previous attentional vector
    memory: torch.Tensor  # (B, S, M) encoder outputs
    keys: torch.Tensor | None  # (B, S, K) attention keys (None without attention)
    mask: torch.Tensor  # (B, S) True at real source positions
    fixed_context: torch.Tensor | None  # (B, M) context when there is no attention

    def index_select(self, index: torch.Tensor) -> DecoderState:
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            values[f.name] = None if value is None else value.index_select(0, index)
        return DecoderState(**values)


class RNNDecoder(nn.Module):
    """Conditional LSTM/GRU decoder; ``attention=None`` gives the no-attention baseline."""

    def __init__(
        self,
        embedding: nn.Embedding,
        encoder_size: int,
        attention: Attention | None,
        rnn_type: str = "lstm",
        hidden_size: int = 512,
        num_layers: int = 1,
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
        hidden_dropout: float = 0.0,
        input_feeding: bool = True,
        tie_output: bool = False,
        bridge: bool = True,
    ):
        super().__init__()
        self.embedding = embedding
        emb_size, vocab_size = embedding.embedding_dim, embedding.num_embeddings
        self.attention = attention
        self.rnn_type, self.hidden_size, self.num_layers = rnn_type, hidden_size, num_layers
        self.input_feeding = input_feeding
        rnn_input = emb_size + (hidden_size if input_feeding else 0) + (0 if attention else encoder_size)
        self.rnn = make_rnn(rnn_type, rnn_input, hidden_size, num_layers, dropout)
        self.emb_dropout = nn.Dropout(emb_dropout)
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.att_layer = nn.Linear(hidden_size + encoder_size, hidden_size)
        self.bridge = nn.Linear(encoder_size, hidden_size) if bridge else None
        if tie_output:
            self.pre_output = (
                nn.Linear(hidden_size, emb_size, bias=False) if hidden_size != emb_size else None
            )
            self.output_layer = nn.Linear(emb_size, vocab_size, bias=False)
            self.output_layer.weight = embedding.weight
        else:
            self.pre_output = None
            self.output_layer = nn.Linear(hidden_size, vocab_size, bias=False)

    def init_state(self, memory: torch.Tensor, final: torch.Tensor, mask: torch.Tensor) -> DecoderState:
        batch = memory.size(0)
        if self.bridge is not None:
            h0 = torch.tanh(self.bridge(final))
        else:
            h0 = memory.new_zeros(batch, self.hidden_size)
        hidden = h0.unsqueeze(1).expand(batch, self.num_layers, self.hidden_size).contiguous()
        cell = torch.zeros_like(hidden) if self.rnn_type == "lstm" else None
        keys = self.attention.prepare(memory) if self.attention is not None else None
        return DecoderState(
            hidden=hidden,
            cell=cell,
            att_vector=memory.new_zeros(batch, self.hidden_size),
            memory=memory,
            keys=keys,
            mask=mask,
            fixed_context=None if self.attention is not None else final,
        )

    def _step(self, emb: torch.Tensor, state: DecoderState) -> tuple[DecoderState, torch.Tensor | None]:
        parts = [emb]
        if self.input_feeding:
            parts.append(state.att_vector)
        if self.attention is None:
            parts.append(state.fixed_context)
        rnn_in = torch.cat(parts, dim=-1).unsqueeze(1)
        h = state.hidden.transpose(0, 1).contiguous()
        if state.cell is not None:
            out, (h, c) = self.rnn(rnn_in, (h, state.cell.transpose(0, 1).contiguous()))
            cell = c.transpose(0, 1)
        else:
            out, h = self.rnn(rnn_in, h)
            cell = None
        query = out.squeeze(1)
        if self.attention is not None:
            context, weights = self.attention(query, state.keys, state.memory, state.mask)
        else:
            context, weights = state.fixed_context, None
        att_vector = self.hidden_dropout(torch.tanh(self.att_layer(torch.cat([query, context], dim=-1))))
        new_state = DecoderState(
            h.transpose(0, 1), cell, att_vector, state.memory, state.keys, state.mask, state.fixed_context
        )
        return new_state, weights

    def logits(self, att_vectors: torch.Tensor) -> torch.Tensor:
        if self.pre_output is not None:
            att_vectors = self.pre_output(att_vectors)
        return self.output_layer(att_vectors)

    def forward(self, tgt_in: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Teacher forcing: ``tgt_in`` (B, T) -> logits (B, T, V). The output layer runs once on all steps."""
        emb = self.emb_dropout(self.embedding(tgt_in))
        outputs = []
        for t in range(tgt_in.size(1)):
            state, _ = self._step(emb[:, t], state)
            outputs.append(state.att_vector)
        return self.logits(torch.stack(outputs, dim=1))

    def step(
        self, prev_tokens: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One search step: ``prev_tokens`` (B,) -> logits (B, V), new state, attention weights (B, S) or None."""
        state, weights = self._step(self.emb_dropout(self.embedding(prev_tokens)), state)
        return self.logits(state.att_vector), state, weights

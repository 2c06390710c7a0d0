"""A recurrent decoder whose recurrences run as whole-sequence kernels in training (plain PyTorch).

The input-feeding decoder (:class:`~s2s.models.decoder.RNNDecoder`) feeds each step's attentional
vector into the next step, so teacher-forced training must run it step by step.  Here, as in the
GNMT decoder of NVIDIA's PyTorch GNMT, the attention is queried by the output of the first
recurrent layer, which reads only the target embeddings:

    h1 = LSTM_1(embeddings)                     one nn.LSTM/nn.GRU call over all target steps
    context = attention(h1, encoder outputs)    all steps at once
    h = LSTM_2..L([h1; context])                one call (when num_layers > 1)
    attentional vector = tanh(W [h; context])   -> output layer

In training every piece is one call over the whole sequence (cuDNN or oneDNN kernels; oneDNN's LSTM
at one thread, :mod:`s2s.models.rnn_threads`); search runs the same modules one step at a time
through the same :class:`DecoderState` interface.
Without attention the context is the encoder's final state, fed to the first layer's input.
"""

from __future__ import annotations

import torch
from torch import nn

from s2s.models.attention import Attention
from s2s.models.decoder import DecoderState, RecurrentDecoder
from s2s.models.encoder import make_rnn
from s2s.models.rnn_threads import run_rnn


class FusedRNNDecoder(RecurrentDecoder):
    """GNMT-style LSTM/GRU decoder without input feeding; ``attention=None`` gives a fixed context."""

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
        tie_output: bool = False,
        bridge: bool = True,
    ):
        super().__init__(embedding, attention, rnn_type, hidden_size, num_layers)
        first_in = embedding.embedding_dim + (0 if attention is not None else encoder_size)
        self.first_rnn = make_rnn(rnn_type, first_in, hidden_size, 1, 0.0)
        self.upper_rnn = (
            make_rnn(rnn_type, hidden_size + encoder_size, hidden_size, num_layers - 1, dropout)
            if num_layers > 1
            else None
        )
        self._init_output(encoder_size, dropout, emb_dropout, hidden_dropout, tie_output, bridge)

    @staticmethod
    def _rnn_state(state: DecoderState, layers: slice) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The (layers, B, H) initial state nn.LSTM/nn.GRU expect, from the batch-first state."""
        h = state.hidden[:, layers].transpose(0, 1).contiguous()
        if state.cell is None:
            return h
        return h, state.cell[:, layers].transpose(0, 1).contiguous()

    def _run(
        self, emb: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, torch.Tensor | None, DecoderState]:
        """All layers over ``emb`` (B, T, E): attentional vectors (B, T, H), weights, final state."""
        steps = emb.size(1)
        x = emb
        if self.attention is None:
            x = torch.cat([emb, state.fixed_context.unsqueeze(1).expand(-1, steps, -1)], dim=-1)
        h1, last1 = run_rnn(self.first_rnn, x, self._rnn_state(state, slice(0, 1)))  # oneDNN's LSTM: one thread
        if self.attention is not None:
            context, weights = self.attention.forward_all(h1, state.keys, state.memory, state.mask)
        else:
            context, weights = state.fixed_context.unsqueeze(1).expand(-1, steps, -1), None
        top, lasts = h1, [last1]
        if self.upper_rnn is not None:
            upper_in = torch.cat([self.layer_dropout(h1), context], dim=-1)
            top, last_up = run_rnn(self.upper_rnn, upper_in, self._rnn_state(state, slice(1, None)))
            lasts.append(last_up)
        att_vectors = self.hidden_dropout(torch.tanh(self.att_layer(torch.cat([top, context], dim=-1))))
        if state.cell is not None:
            hidden = torch.cat([h for h, _ in lasts], dim=0).transpose(0, 1)
            cell = torch.cat([c for _, c in lasts], dim=0).transpose(0, 1)
        else:
            hidden, cell = torch.cat(lasts, dim=0).transpose(0, 1), None
        new_state = DecoderState(
            hidden, cell, att_vectors[:, -1], state.memory, state.keys, state.mask, state.fixed_context
        )
        return att_vectors, weights, new_state

    def compile_step(self, mode: str = "default") -> None:
        """Compile the layer stack that training (all steps) and search (one step) both run."""
        self._run = torch.compile(self._run, mode=mode, dynamic=True)

    def forward(self, tgt_in: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """Teacher forcing: ``tgt_in`` (B, T) -> logits (B, T, V), every layer in one call."""
        att_vectors, _, _ = self._run(self.emb_dropout(self.embedding(tgt_in)), state)
        return self.logits(att_vectors)

    def step(
        self, prev_tokens: torch.Tensor, state: DecoderState
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One search step: ``prev_tokens`` (B,) -> logits (B, V), new state, attention weights (B, S) or None."""
        emb = self.emb_dropout(self.embedding(prev_tokens)).unsqueeze(1)
        att_vectors, weights, state = self._run(emb, state)
        return self.logits(att_vectors[:, 0]), state, None if weights is None else weights[:, 0]

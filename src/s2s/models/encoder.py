"""Recurrent encoders over packed sequences (plain PyTorch)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from s2s.models.dropout import Dropout
from s2s.models.rnn_threads import run_rnn

RNN_TYPES = {"lstm": nn.LSTM, "gru": nn.GRU}


def make_rnn(
    rnn_type: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, **kw
) -> nn.RNNBase:
    if rnn_type not in RNN_TYPES:
        raise ValueError(f"rnn_type={rnn_type!r}: expected one of {sorted(RNN_TYPES)}")
    return RNN_TYPES[rnn_type](
        input_size,
        hidden_size,
        num_layers,
        batch_first=True,
        dropout=dropout if num_layers > 1 else 0.0,
        **kw,
    )


class RNNEncoder(nn.Module):
    """A (bi)directional LSTM/GRU encoder.

    Sequences are packed, so padding never enters the recurrence: a sentence encodes to the same
    states alone or in a padded batch.  ``final`` is the last layer's final state, both directions
    concatenated; the decoder's bridge starts from it.
    """

    def __init__(
        self,
        embedding: nn.Embedding,
        rnn_type: str = "lstm",
        hidden_size: int = 256,
        num_layers: int = 1,
        dropout: float = 0.0,
        emb_dropout: float = 0.0,
        bidirectional: bool = True,
    ):
        super().__init__()
        self.embedding = embedding
        self.emb_dropout = Dropout(emb_dropout)
        self.rnn = make_rnn(
            rnn_type, embedding.embedding_dim, hidden_size, num_layers, dropout, bidirectional=bidirectional
        )
        self.out_dropout = Dropout(dropout)
        self.num_directions = 2 if bidirectional else 1
        self.output_size = hidden_size * self.num_directions

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``src`` (B, S) ids, ``src_lengths`` (B,) -> outputs (B, S, O) and final (B, O)."""
        emb = self.emb_dropout(self.embedding(src))
        packed = pack_padded_sequence(emb, src_lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, hidden = run_rnn(self.rnn, packed)  # a batch of equal lengths would reach oneDNN's LSTM
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        if isinstance(hidden, tuple):  # LSTM: (h, c); the bridge starts from h
            hidden = hidden[0]
        # hidden: (layers * directions, B, H) -> last layer's directions concatenated
        last = hidden.view(-1, self.num_directions, hidden.size(1), hidden.size(2))[-1]
        final = torch.cat(list(last), dim=-1)
        return self.out_dropout(out), final

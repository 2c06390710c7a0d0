"""The encoder-decoder model: the interface search and training use (plain PyTorch)."""

from __future__ import annotations

import torch
from torch import nn

from s2s.models.decoder import DecoderState, RNNDecoder
from s2s.models.encoder import RNNEncoder
from s2s.models.transformer_decoder import TransformerDecoder, TransformerState
from s2s.models.transformer_encoder import TransformerEncoder

State = DecoderState | TransformerState


class Seq2Seq(nn.Module):
    """Composes an encoder and a decoder (recurrent or Transformer).

    Search needs only :meth:`encode` and :meth:`decode_step`; training calls :meth:`forward`.
    """

    def __init__(
        self, encoder: RNNEncoder | TransformerEncoder, decoder: RNNDecoder | TransformerDecoder, pad_id: int = 0
    ):
        super().__init__()
        self.encoder, self.decoder, self.pad_id = encoder, decoder, pad_id

    @property
    def vocab_size(self) -> int:
        return self.decoder.embedding.num_embeddings

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> State:
        memory, final = self.encoder(src, src_lengths)
        mask = src != self.pad_id
        return self.decoder.init_state(memory, final, mask)

    def decode_step(
        self, prev_tokens: torch.Tensor, state: State
    ) -> tuple[torch.Tensor, State, torch.Tensor | None]:
        """Log-probabilities (B, V) of the next token, the new state and the attention weights."""
        logits, state, weights = self.decoder.step(prev_tokens, state)
        return torch.log_softmax(logits.float(), dim=-1), state, weights

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        return self.decoder(tgt_in, self.encode(src, src_lengths))

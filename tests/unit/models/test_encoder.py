"""s2s.models.encoder: a sentence encodes the same alone and in a padded batch."""

from __future__ import annotations

import pytest
import torch

from s2s.models.encoder import RNNEncoder

from helpers.tiny_models import padded_batch


@pytest.mark.parametrize("rnn_type", ["lstm", "gru"])
def test_encoder_alone_equals_in_padded_batch(rnn_type: str) -> None:
    torch.manual_seed(0)
    enc = RNNEncoder(torch.nn.Embedding(20, 8, padding_idx=0), rnn_type, 12, num_layers=2).eval()
    src, lengths = padded_batch([3, 7, 5])
    out, final = enc(src, lengths)
    alone_out, alone_final = enc(src[:1, :3], lengths[:1])
    torch.testing.assert_close(out[0, :3], alone_out[0], atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(final[0], alone_final[0], atol=1e-6, rtol=1e-5)
    assert torch.all(out[0, 3:] == 0), "padded positions must not carry states"

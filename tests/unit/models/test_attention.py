"""s2s.models.attention: every attention masks padding exactly; sizes are checked."""

from __future__ import annotations

import pytest
import torch

from s2s.models.attention import AdditiveAttention, DotAttention, GeneralAttention, ScaledDotAttention

ATTENTIONS = [AdditiveAttention, DotAttention, GeneralAttention, ScaledDotAttention]


@pytest.mark.parametrize("cls", ATTENTIONS)
def test_attention_masks_padding_exactly(cls: type) -> None:
    torch.manual_seed(0)
    att = cls(16, 16)
    memory = torch.randn(3, 6, 16)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    context, weights = att(torch.randn(3, 16), att.prepare(memory), memory, mask)
    assert torch.all(weights[~mask] == 0.0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    assert context.shape == (3, 16)
    # the context of a sentence with one real position is exactly that position's memory
    torch.testing.assert_close(context[2], memory[2, 0])


def test_dot_attention_rejects_mismatched_sizes() -> None:
    with pytest.raises(ValueError, match="general"):
        DotAttention(8, 16)

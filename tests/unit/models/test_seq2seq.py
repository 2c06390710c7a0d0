"""The assembled encoder-decoder: every conf/model config builds, runs forward and gets gradients."""

from __future__ import annotations

import pytest
import torch

from s2s.models.build import build_model

from conftest import MODEL_CONFIGS, small_model_config
from helpers.tiny_models import padded_batch


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_builds_and_trains_a_step(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(small_model_config(name), vocab_size=30)
    src, lengths = padded_batch([4, 6], vocab=30)
    tgt_in = torch.randint(4, 30, (2, 5))
    logits = model(src, lengths, tgt_in)
    assert logits.shape == (2, 5, 30)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 30), torch.randint(4, 30, (10,)))
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0



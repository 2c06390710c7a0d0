"""s2s.models.dropout: nn.Dropout's arithmetic with a mask drawn the same way on every CPU."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from s2s.common.numerics import cpu_vendor
from s2s.models.dropout import Dropout


@pytest.mark.skipif(cpu_vendor() == "GenuineIntel", reason="PyTorch draws CPU dropout masks with MKL's VSL on Intel")
@pytest.mark.parametrize("transpose", [False, True])
def test_equals_pytorch_dropout_where_pytorch_takes_its_default_path(transpose: bool) -> None:
    """On a non-Intel CPU PyTorch uses its own generator path: ours must give the very same bits
    (so the results of every earlier run on such a CPU are unchanged), values and gradients."""
    x = torch.randn(16, 9, 24)
    x = x.transpose(0, 2) if transpose else x  # masks follow memory order, like PyTorch's
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    torch.manual_seed(11)
    ours = Dropout(0.3).train()(x1)
    torch.manual_seed(11)
    theirs = F.dropout(x2, 0.3, training=True)
    assert torch.equal(ours, theirs)
    ours.pow(2).sum().backward()
    theirs.pow(2).sum().backward()
    assert torch.equal(x1.grad, x2.grad)


def test_keeps_one_minus_p_of_the_units_scaled_by_its_inverse() -> None:
    torch.manual_seed(0)
    x = torch.ones(200, 500)
    y = Dropout(0.2).train()(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.01
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.8))


def test_the_same_seed_gives_the_same_mask_and_another_seed_another() -> None:
    x = torch.randn(32, 64)
    masks = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        masks.append(Dropout(0.5).train()(x) != 0)
    assert torch.equal(masks[0], masks[1]) and not torch.equal(masks[0], masks[2])


def test_identity_in_eval_mode_and_at_p_zero_zeros_at_p_one() -> None:
    x = torch.randn(8, 8)
    assert torch.equal(Dropout(0.5).eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))

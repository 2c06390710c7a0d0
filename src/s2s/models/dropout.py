"""Dropout whose mask is the same on every CPU, Intel or AMD.

PyTorch draws a CPU dropout mask (``bernoulli_`` with a float probability) with MKL's VSL
generator when the CPU's vendor is Intel, and with its own generator otherwise (ATen's
``bernoulli_scalar_kernel``: "the situation of AMD, move to using the default version"). The same
seed therefore trains other weights on an Intel Xeon than on an AMD EPYC, whatever the numerics
pinning does. This module always takes the default path: a float64 uniform draw per element from
the seeded CPU generator, in memory order, kept where it is below ``1 - p`` and scaled by
``1 / (1 - p)``. That is exactly what ``nn.Dropout`` computes on a non-Intel CPU, so results there
are unchanged, and it involves no vendor-specific library. On other devices (CUDA) it is
``nn.Dropout`` itself: GPU runs are not bit-exact anyway, and its fused kernel is faster.
"""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the same mask on every CPU for the same generator state."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        keep = 1.0 - self.p
        if keep == 0.0:
            return x.mul_(0.0) if self.inplace else x * 0.0
        draws = torch.empty_like(x, dtype=torch.float64).uniform_()
        mask = torch.empty_like(x).copy_(draws < keep).div_(keep)
        return x.mul_(mask) if self.inplace else x * mask

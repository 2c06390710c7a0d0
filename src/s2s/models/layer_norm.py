"""A layer norm whose parameter gradients have the same bits at any thread count (plain PyTorch).

ATen's CPU ``layer_norm`` backward sums the weight and bias gradients in one buffer per thread and
adds the buffers up at the end, so the order of that sum, and its last bits, follow the thread count
(measured: 1, 2 and 3 threads gave three different weight gradients for a 64x25x256 input, torch
2.13, AVX2 kernels; the input gradient and the forward did not change).  Portable numerics promise
the same weights at any thread count, so the Transformer's norms take this one instead.

The forward is ATen's (one row per thread: thread-invariant); the backward is written with plain
ops: the input gradient reduces each row whole, and the parameter gradients are column sums over
all rows, which ATen shares out by columns (each column reduced whole by one thread).  The formula
is the one ATen evaluates; only the order of the partial sums is fixed.
"""

from __future__ import annotations

import torch
from torch import nn


class _LayerNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):  # noqa: ANN001, ANN205 - autograd's signature
        out, mean, rstd = torch.native_layer_norm(x, (x.size(-1),), weight, bias, eps)
        ctx.save_for_backward(x, weight, mean, rstd)
        return out

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        x, weight, mean, rstd = ctx.saved_tensors
        grad = grad.to(x.dtype)
        xhat = (x - mean) * rstd
        size = x.size(-1)
        grad_weight = (grad * xhat).reshape(-1, size).sum(0)
        grad_bias = grad.reshape(-1, size).sum(0)
        g = grad * weight
        grad_x = rstd * (g - g.mean(-1, keepdim=True) - xhat * (g * xhat).mean(-1, keepdim=True))
        return grad_x, grad_weight, grad_bias, None


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last dimension, with a thread-count-invariant backward (module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        if not needs_grad or x.device.type != "cpu":
            return super().forward(x)  # inference, or a GPU (not bit-exact anyway): the plain kernel
        return _LayerNorm.apply(x, self.weight, self.bias, self.eps)

"""A softmax whose gradient has the same bits at any thread count (plain PyTorch).

ATen's ``_softmax_backward_data`` (the backward of ``torch.softmax``) gave other bits at 1 thread
than at 2 for the attention weights of the default model (64×30, AVX2 kernels, torch 2.13): the
only kernel of a whole training step that did, once MKL runs its AVX2 branch. An op-by-op replay
of two training steps at 1 and N threads found it and nothing else (``benchmarks/thread_trace.py``).

Here the forward is ``torch.softmax`` (thread-invariant: one row per thread) and the backward is
written with plain elementwise ops and a row reduction, ``y * (g - sum(g * y))``: each row is
reduced whole by one thread, so the result does not depend on how rows are shared out. This is
the same formula ATen evaluates; only the order of its vectorised partial sums is fixed.
"""

from __future__ import annotations

import torch


class _Softmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, dim: int) -> torch.Tensor:  # noqa: ANN001 - autograd's ctx
        y = torch.softmax(x, dim=dim)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # noqa: ANN001
        (y,) = ctx.saved_tensors
        return y * (grad - (grad * y).sum(dim=ctx.dim, keepdim=True)), None


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``torch.softmax(x, dim)`` with a thread-count-invariant backward (see the module docstring)."""
    if not (torch.is_grad_enabled() and x.requires_grad):
        return torch.softmax(x, dim=dim)  # inference: no backward, the plain kernel
    return _Softmax.apply(x, dim)

"""Recurrent calls whose bits do not depend on the thread count: oneDNN's LSTM runs at one thread.

On the CPU in float32, PyTorch (2.13) runs ``nn.LSTM`` through oneDNN's RNN primitive
(``aten::mkldnn_rnn_layer`` and ``mkldnn_rnn_layer_backward``; oneDNN's ``ref`` RNN over its own
packed GEMM) when the input is a padded batch, or a packed one whose sentences all have the same
length (a batch of one included): the fused decoder's layers, and an encoder batch of equal lengths.
That kernel shares its work out by thread count: a 64x30x256 bidirectional LSTM gave another output
and other gradients at 3, 4 and 8 threads than at 1 and 2, and a 32x20x32 one with 64 units other
gradients already at 2 threads (AVX2 kernels, AMD EPYC). A packed batch of unequal lengths, and
every ``nn.GRU``, run ATen's own kernels and MKL's GEMMs (whose thread count portable numerics hold
apart: ``s2s.common.numerics.PORTABLE_MKL_THREADS``).

:func:`run_rnn` therefore runs a call that goes to oneDNN at one thread, forward and backward, while
everything around it keeps every core. The backward runs the very graph the plain call records (an
autograd function replays it with ``torch.autograd.grad``), so the bits are those of a one-thread
run; at one thread the plain call runs, unchanged. Only where deterministic algorithms are on
(portable numerics): the fast mode keeps oneDNN's threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from s2s.common.numerics import set_threads


@contextmanager
def intra_op_threads(threads: int) -> Iterator[None]:
    """Run the block's kernels (ATen, MKL, oneDNN) at ``threads`` intra-op threads, then restore the count.

    ``torch.set_num_threads`` is process-wide but cheap; the autograd engine runs a CPU backward on the
    thread that called ``backward()``, so a count set in a backward function holds for its kernels."""
    before = torch.get_num_threads()
    if before == threads:
        yield
        return
    set_threads(threads)
    try:
        yield
    finally:
        set_threads(before)


def goes_to_onednn(rnn: nn.Module, x: torch.Tensor | PackedSequence) -> bool:
    """Whether PyTorch would run ``rnn`` on ``x`` with oneDNN's thread-dependent LSTM, at several threads."""
    if not isinstance(rnn, nn.LSTM) or torch.get_num_threads() == 1 or torch.compiler.is_compiling():
        return False  # (a compiled decoder, train.compile or decode.compile, runs kernels of its own)
    data = x.data if isinstance(x, PackedSequence) else x
    if data.device.type != "cpu" or not torch.are_deterministic_algorithms_enabled():
        return False
    if isinstance(x, PackedSequence):  # batch sizes never grow: equal ends mean equal lengths
        return bool(x.batch_sizes[0] == x.batch_sizes[-1])
    return True


class _AtOneThread(torch.autograd.Function):
    """``run(*inputs)`` at one thread, and its backward too: the recorded graph, replayed at one thread."""

    @staticmethod
    def forward(ctx, run: Callable[..., tuple[torch.Tensor, ...]], n_inputs: int, *tensors: torch.Tensor):  # noqa: ANN001, ANN205
        # ``tensors``: the inputs ``run`` takes, then the parameters it reads itself (passed only
        # so that their gradients flow back through this function)
        leaves = [t.detach().requires_grad_(t.requires_grad) for t in tensors[:n_inputs]]
        with torch.enable_grad(), intra_op_threads(1):
            outputs = run(*leaves)
        ctx.graph = (leaves, tensors[n_inputs:], outputs)
        ctx.set_materialize_grads(False)  # an output without a gradient stays without, as in the plain graph
        return tuple(out.detach() for out in outputs)

    @staticmethod
    def backward(ctx, *grads: torch.Tensor | None):  # noqa: ANN001, ANN205
        leaves, params, outputs = ctx.graph
        del ctx.graph
        wanted = [t for t in (*leaves, *params) if t.requires_grad]
        pairs = [(out, g) for out, g in zip(outputs, grads) if g is not None and out.requires_grad]
        found: list[torch.Tensor | None] = [None] * len(wanted)
        if pairs and wanted:
            with intra_op_threads(1):
                found = list(torch.autograd.grad(
                    [out for out, _ in pairs], wanted, [g for _, g in pairs], allow_unused=True
                ))
        it = iter(found)
        return (None, None, *(next(it) if t.requires_grad else None for t in (*leaves, *params)))


def run_rnn(rnn: nn.Module, x: torch.Tensor | PackedSequence, hx: Any = None) -> tuple[Any, Any]:
    """``rnn(x, hx)`` (an ``nn.LSTM`` or ``nn.GRU``), at one thread where oneDNN's LSTM would run it."""
    if not goes_to_onednn(rnn, x):
        return rnn(x, hx)
    if not (torch.is_grad_enabled() and _any_requires_grad(rnn, x, hx)):
        with intra_op_threads(1):
            return rnn(x, hx)
    packed = isinstance(x, PackedSequence)
    data = x.data if packed else x
    states = () if hx is None else tuple(hx)

    def run(data: torch.Tensor, *states: torch.Tensor) -> tuple[torch.Tensor, ...]:
        inp = PackedSequence(data, x.batch_sizes, x.sorted_indices, x.unsorted_indices) if packed else data
        out, (h, c) = rnn(inp, states or None)
        return (out.data if packed else out), h, c

    out, h, c = _AtOneThread.apply(run, 1 + len(states), data, *states, *rnn.parameters())
    if packed:
        out = PackedSequence(out, x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    return out, (h, c)


def _any_requires_grad(rnn: nn.Module, x: torch.Tensor | PackedSequence, hx: Any) -> bool:
    tensors = [x.data if isinstance(x, PackedSequence) else x, *(() if hx is None else hx), *rnn.parameters()]
    return any(t.requires_grad for t in tensors)

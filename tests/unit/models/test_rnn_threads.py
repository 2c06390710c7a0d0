"""s2s.models.rnn_threads: an LSTM call that oneDNN would run gives the one-thread bits at any thread count.

PyTorch sends a CPU ``nn.LSTM`` on a padded batch, or on a packed one of equal lengths, to oneDNN's
RNN kernel, whose output and gradients change with the thread count (measured on an AMD EPYC: from 2
threads at these sizes). The project runs those calls at one thread, forward and backward; the
numerics part (MKL held at 2 threads) is checked in a subprocess, as a stage applies it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from s2s.models.rnn_threads import goes_to_onednn, run_rnn

SRC = Path(__file__).resolve().parents[3] / "src"


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)  # as portable numerics run (the fast mode keeps oneDNN's threads)
    yield
    torch.use_deterministic_algorithms(before)


def _step(pinned: bool, threads: int, packed: bool) -> list[torch.Tensor]:
    """Output, final states and every gradient of one LSTM call (the fused decoder's shape, shrunk)."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(32, 64, batch_first=True)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(32, 20, 32, generator=gen, requires_grad=True)
    hx = tuple(torch.randn(1, 32, 64, generator=gen, requires_grad=True) for _ in range(2))
    inp = pack_padded_sequence(x, torch.full((32,), 20), batch_first=True) if packed else x
    out, (h, c) = run_rnn(lstm, inp, hx) if pinned else lstm(inp, hx)
    y = out.data if packed else out
    # c gets no gradient, as in the models (an output without one must stay without)
    ((y * torch.randn(y.shape, generator=gen)).sum() + (h * torch.randn(h.shape, generator=gen)).sum()).backward()
    assert torch.get_num_threads() == threads  # the count is restored after the pinned call
    return [y.detach(), h.detach(), c.detach(), x.grad, *(s.grad for s in hx), *(p.grad for p in lstm.parameters())]


@pytest.mark.parametrize("packed", [False, True], ids=["padded", "packed-equal-lengths"])
def test_an_lstm_call_gives_the_one_thread_bits_at_any_thread_count(deterministic, packed: bool) -> None:
    one = _step(False, 1, packed)
    assert all(torch.equal(a, b) for a, b in zip(one, _step(True, 1, packed)))  # at 1 thread: the plain call
    for threads in (2, 3, 4):
        pinned = _step(True, threads, packed)
        assert all(torch.equal(a, b) for a, b in zip(one, pinned)), f"{threads} threads"


def test_only_the_calls_that_reach_onednn_are_pinned(deterministic) -> None:
    lstm, gru = torch.nn.LSTM(4, 4, batch_first=True), torch.nn.GRU(4, 4, batch_first=True)
    x = torch.randn(3, 5, 4)
    torch.set_num_threads(2)
    assert goes_to_onednn(lstm, x) and not goes_to_onednn(gru, x)  # a GRU runs ATen's own kernels
    assert goes_to_onednn(lstm, pack_padded_sequence(x, torch.tensor([5, 5, 5]), batch_first=True))
    assert not goes_to_onednn(lstm, pack_padded_sequence(x, torch.tensor([5, 4, 2]), batch_first=True))
    torch.set_num_threads(1)
    assert not goes_to_onednn(lstm, x)  # one thread: nothing to pin
    torch.use_deterministic_algorithms(False)
    torch.set_num_threads(2)
    assert not goes_to_onednn(lstm, x)  # the fast mode


def test_portable_numerics_hold_mkl_at_two_threads_and_its_products_at_the_one_thread_bits() -> None:
    """MKL runs its AUTO branch on an AMD CPU, where strict mode does not hold: a narrow product (the
    tiny encoder's recurrent input gradient) changed at 4 threads. Held at 2, it has the 1-thread bits."""
    code = """
import torch
from s2s.common.numerics import PORTABLE_MKL_THREADS, apply_numerics, mkl_threads, set_threads
apply_numerics("portable", 4)
assert torch.get_num_threads() == 4 and mkl_threads() == PORTABLE_MKL_THREADS == 2, mkl_threads()
gen = torch.Generator().manual_seed(0)
a, b = torch.randn(31, 128, generator=gen), torch.randn(128, 32, generator=gen)
four = a @ b
set_threads(1)
assert mkl_threads() == 1
assert torch.equal(four, a @ b)
"""
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_WAIT_POLICY": "PASSIVE"}
    for key in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
        env.pop(key, None)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]

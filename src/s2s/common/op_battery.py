"""The op battery: checksums of the kernels that decide a training's bits, under one numerics setting.

Portable numerics claim that a setting (MKL branch, thread count) gives the same bits on every x86
CPU. A tiny pipeline that differs between two machines says *that* they parted; the battery says
*where*: each op the models run (the GEMMs at the default model's shapes with both operand layouts,
forward and backward, the attention softmax, the output log-softmax, embedding and LSTM gradients,
reductions, the dropout draw, an Adam step) is checksummed on seeded inputs, and the first op whose
checksum differs between two CPUs' records names the kernel. ``make verify`` compares these records
per candidate numerics (``s2s.common.verification``), and each record holds every op at 1, 2, 4
and 8 threads (and every core), so it also names the ops whose bits follow the thread count. The
LSTMs run as the models run them (``s2s.models.rnn_threads``); a few ops run as PyTorch would, to
show why the models do otherwise (``torch.softmax``, ``nn.LSTM`` on a padded batch: oneDNN's kernel).

The libraries read the pinning variables at the first tensor operation, so one process measures
one setting: ``python -m s2s.common.op_battery --branch AVX2 --threads 4`` prints one JSON object
(more threads than cores is fine: only the bits are measured).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable

# (m, k, n) of the default model's GEMMs: LSTM input projection, one recurrent step, the output
# layer forward (vocabulary 8000) and its input gradient, the attentional layer, a decoder step's
# gates; then odd sizes whose blocking differs
GEMM_SHAPES = (
    (1920, 512, 2048),
    (64, 512, 2048),
    (1920, 512, 8000),
    (1920, 8000, 512),
    (1920, 1024, 512),
    (64, 1536, 2048),
    (718, 1024, 256),
    (37, 300, 777),
    (8, 4096, 8),
)


def _md5(tensor) -> str:  # noqa: ANN001 - a torch.Tensor (torch is imported after the pinning)
    return hashlib.md5(tensor.detach().reshape(-1).clone().numpy().tobytes()).hexdigest()[:8]


def battery() -> dict[str, str]:
    """Checksums (md5, 8 hex digits) of every op, in a fixed order, on inputs seeded here."""
    import torch
    from torch.nn import functional as F
    from torch.nn.utils.rnn import pack_padded_sequence

    from s2s.models.dropout import Dropout
    from s2s.models.rnn_threads import run_rnn
    from s2s.models.softmax import softmax

    out: dict[str, str] = {}
    torch.manual_seed(0)  # the modules' own initialisation draws from the global generator
    gen = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen)

    for m, k, n in GEMM_SHAPES:
        a, b = randn(m, k), randn(k, n)
        out[f"mm {m}x{k}x{n}"] = _md5(a @ b)
        out[f"mm A^T-layout {m}x{k}x{n}"] = _md5(a.t().contiguous().t() @ b)
        out[f"mm B^T-layout {m}x{k}x{n}"] = _md5(a @ b.t().contiguous().t())
        out[f"A^T.B {k}x{m}x{n}"] = _md5(a.t() @ randn(m, n))
    out["bmm 64x30x512.512x28"] = _md5(torch.bmm(randn(64, 30, 512), randn(64, 512, 28)))

    def grads(name: str, forward: Callable[[], torch.Tensor], *leaves: torch.Tensor) -> None:
        y = forward()
        out[f"{name} forward"] = _md5(y)
        y.backward(randn(*y.shape))
        for i, leaf in enumerate(leaves):
            out[f"{name} grad {i}"] = _md5(leaf.grad)

    x = randn(64, 30, 512).requires_grad_()
    lin = torch.nn.Linear(512, 2048)
    grads("linear 64x30x512->2048", lambda: lin(x), x, lin.weight)
    s = randn(64, 30).requires_grad_()
    grads("torch.softmax 64x30", lambda: torch.softmax(s, -1), s)
    s2 = s.detach().clone().requires_grad_()
    grads("s2s softmax 64x30", lambda: softmax(s2, -1), s2)
    logits = randn(1920, 8000).requires_grad_()
    grads("log_softmax 1920x8000", lambda: F.log_softmax(logits, -1), logits)
    emb = torch.nn.Embedding(8000, 256, padding_idx=0)
    ids = torch.randint(0, 8000, (64, 30), generator=gen)
    grads("embedding 8000x256", lambda: emb(ids), emb.weight)
    lstm = torch.nn.LSTM(256, 256, batch_first=True, bidirectional=True)
    inp = randn(64, 30, 256).requires_grad_()
    grads("bilstm 64x30x256", lambda: run_rnn(lstm, inp)[0], inp, lstm.weight_ih_l0, lstm.weight_hh_l0)

    rows = randn(1920, 8000)
    out["sum over rows 1920x8000"] = _md5(rows.sum(-1))
    out["mean over columns 1920x8000"] = _md5(rows.mean(0))
    out["sum 30k"] = _md5(randn(30_000).sum())
    out["sum 5M"] = _md5(randn(5_000_000).sum())
    out["vector_norm 2M"] = _md5(torch.linalg.vector_norm(randn(2_000_000)))

    torch.manual_seed(0)
    out["s2s dropout mask"] = _md5(Dropout(0.3)(torch.ones(64, 30, 512)))
    params = [torch.nn.Parameter(randn(8000, 256)), torch.nn.Parameter(randn(2048, 512))]
    for p in params:
        p.grad = randn(*p.shape)
    adam = torch.optim.Adam(params, lr=0.002)
    adam.step()
    adam.step()
    out["adam two steps"] = _md5(torch.cat([p.detach().reshape(-1) for p in params]))

    # added with the thread-count evidence (after the ops above, so that their inputs stay as recorded)
    a, b = randn(31, 128), randn(128, 32)  # a narrow product: the tiny encoder's recurrent input gradient
    out["mm 31x128x32"] = _md5(a @ b)
    lstm = torch.nn.LSTM(256, 256, batch_first=True, bidirectional=True)
    inp = randn(64, 30, 256).requires_grad_()
    grads("nn.LSTM padded 64x30x256 (oneDNN)", lambda: lstm(inp)[0], inp, lstm.weight_ih_l0, lstm.weight_hh_l0)
    inp2 = inp.detach().clone().requires_grad_()
    for p in lstm.parameters():
        p.grad = None  # this op's gradients alone
    lengths = torch.randint(5, 31, (64,), generator=gen)
    lengths[0] = 30
    grads(
        "bilstm packed 64x30x256 (the encoder)",
        lambda: run_rnn(lstm, pack_padded_sequence(inp2, lengths, batch_first=True, enforce_sorted=False))[0].data,
        inp2, lstm.weight_ih_l0, lstm.weight_hh_l0,
    )
    lstm_dec = torch.nn.LSTM(256, 512, batch_first=True)
    emb = randn(64, 28, 256).requires_grad_()
    state = (randn(1, 64, 512), randn(1, 64, 512))
    fused = "lstm 64x28x256->512 (the fused decoder)"
    grads(fused, lambda: run_rnn(lstm_dec, emb, state)[0], emb, lstm_dec.weight_hh_l0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", default="portable", help="numerics.mode")
    parser.add_argument("--branch", default=None, help="numerics.mkl_branch (portable mode)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    from s2s.common.numerics import DEFAULT_MKL_BRANCH, apply_numerics

    apply_numerics(args.mode, args.threads, args.branch or DEFAULT_MKL_BRANCH)
    print(json.dumps(battery()))


if __name__ == "__main__":
    main()

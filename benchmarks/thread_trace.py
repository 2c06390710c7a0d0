"""Find the kernels whose bits depend on the thread count: replay every op of training steps at 1 and N threads.

The model runs two Adam steps at N threads under portable numerics (default model sizes, or those of
the overrides, e.g. preset=tiny; a random batch of train.batch.max_sentences sentences of unequal
lengths). Each op runs twice, at the thread count in force (N, or 1 inside a call the models pin,
s2s.models.rnn_threads; MKL at most s2s.common.numerics.PORTABLE_MKL_THREADS) on a copy of its
inputs with their strides, and at 1 thread; an op whose floating-point outputs differ is printed
with its input shapes and strides. Evidence for s2s.models.softmax, layer_norm and rnn_threads, and
for numerics.PORTABLE_MKL_THREADS (torch 2.13).

    python benchmarks/thread_trace.py [MODEL] [N] [OVERRIDE...]   # e.g. bilstm_attn 4 preset=tiny
                                                                  # (minutes on 2 cores; N > cores is fine)
"""

from __future__ import annotations

import collections
import hashlib
import sys
from pathlib import Path

from s2s.common.numerics import apply_numerics, set_threads

apply_numerics("portable", 1)  # before the first tensor operation

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_flatten, tree_map  # noqa: E402

from s2s.models.build import build_model  # noqa: E402
from s2s.training.task import token_loss_sum  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"
SKIPPED = {"uniform_", "bernoulli_", "normal_", "random_", "empty", "empty_like", "new_empty", "new_empty_strided"}


def checksum(t: torch.Tensor) -> str:
    return hashlib.md5(t.detach().reshape(-1).clone().view(torch.uint8).numpy().tobytes()).hexdigest()


class Replay(TorchDispatchMode):
    def __init__(self, threads: int) -> None:
        super().__init__()
        self.threads, self.checked, self.differing = threads, 0, collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - dispatcher hook
        kwargs = kwargs or {}
        if func.overloadpacket.__name__ in SKIPPED:
            return func(*args, **kwargs)

        def clone(x):  # noqa: ANN001, ANN202 - the same layout (strides, offset): it can change a kernel's bits
            if not isinstance(x, torch.Tensor) or x.is_sparse:
                return x
            copy = torch.empty(0, dtype=x.dtype)
            return copy.set_(x.untyped_storage().clone(), x.storage_offset(), x.size(), x.stride())

        args_n, kwargs_n = tree_map(clone, args), tree_map(clone, kwargs)
        threads = torch.get_num_threads()  # N, or 1 in a call the models pin
        out_n = func(*args_n, **kwargs_n)
        set_threads(1)
        out_1 = func(*args, **kwargs)
        set_threads(threads)

        def floats(tree):  # noqa: ANN001, ANN202
            return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor) and x.is_floating_point()]

        self.checked += 1
        if any(checksum(a) != checksum(b) for a, b in zip(floats((out_1, args)), floats((out_n, args_n)))):
            tensors = [x for x in tree_flatten(args)[0] if isinstance(x, torch.Tensor)]
            key = f"{func} {[tuple(x.shape) for x in tensors]} strides {[x.stride() for x in tensors]} at {threads}"
            if not self.differing[key]:
                print("differs:", key, flush=True)
            self.differing[key] += 1
        return out_1


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "bilstm_attn"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={name}", *sys.argv[3:]])
    torch.manual_seed(0)
    vocab, batch = int(cfg.preprocess.spm.vocab_size), int(cfg.train.batch.max_sentences or 64)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), vocab).train()
    src_len, tgt_len = 30, 28
    lengths = torch.randint(5, src_len + 1, (batch,)).sort(descending=True).values
    lengths[0] = src_len
    src = torch.randint(4, vocab, (batch, src_len)).masked_fill(torch.arange(src_len) >= lengths[:, None], 0)
    tgt = torch.randint(4, vocab, (batch, tgt_len + 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    set_threads(threads)
    with Replay(threads) as replay:
        for _ in range(2):
            loss = token_loss_sum(model(src, lengths, tgt[:, :-1]), tgt[:, 1:], 0.1) / tgt[:, 1:].numel()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
    setting = " ".join([name, *sys.argv[3:]])
    print(f"{setting}: {replay.checked} ops replayed at 1 and {threads} threads; {len(replay.differing)} differ")


if __name__ == "__main__":
    main()

"""Find the kernels whose bits depend on the thread count: replay every op of training steps at 1 and N threads.

Each op of two Adam steps of a model (default model sizes, a random batch of 64 sentences) runs
twice on cloned inputs, at N threads and at 1, under portable numerics; an op whose floating-point
outputs differ is printed with its input shapes. Evidence for s2s.models.softmax (the one culprit
on MKL's AVX2 branch, torch 2.13).

    python benchmarks/thread_trace.py [MODEL] [N]      # e.g. bilstm_attn 2 (minutes on 2 cores)
"""

from __future__ import annotations

import collections
import hashlib
import sys
from pathlib import Path

from s2s.common.numerics import apply_numerics

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

        def clone(x):  # noqa: ANN001, ANN202
            return x.clone() if isinstance(x, torch.Tensor) else x

        args_n, kwargs_n = tree_map(clone, args), tree_map(clone, kwargs)
        torch.set_num_threads(self.threads)
        out_n = func(*args_n, **kwargs_n)
        torch.set_num_threads(1)
        out_1 = func(*args, **kwargs)

        def floats(tree):  # noqa: ANN001, ANN202
            return [x for x in tree_flatten(tree)[0] if isinstance(x, torch.Tensor) and x.is_floating_point()]

        self.checked += 1
        if any(checksum(a) != checksum(b) for a, b in zip(floats((out_1, args)), floats((out_n, args_n)))):
            shapes = [tuple(x.shape) for x in tree_flatten(args)[0] if isinstance(x, torch.Tensor)]
            key = f"{func} {shapes}"
            if not self.differing[key]:
                print("differs:", key, flush=True)
            self.differing[key] += 1
        return out_1


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "bilstm_attn"
    threads = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={name}"])
    torch.manual_seed(0)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), 8000).train()
    batch, src_len, tgt_len = 64, 30, 28
    lengths = torch.randint(5, src_len + 1, (batch,)).sort(descending=True).values
    lengths[0] = src_len
    src = torch.randint(4, 8000, (batch, src_len)).masked_fill(torch.arange(src_len) >= lengths[:, None], 0)
    tgt = torch.randint(4, 8000, (batch, tgt_len + 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    with Replay(threads) as replay:
        for _ in range(2):
            loss = token_loss_sum(model(src, lengths, tgt[:, :-1]), tgt[:, 1:], 0.1) / tgt[:, 1:].numel()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
    print(f"{name}: {replay.checked} ops replayed at 1 and {threads} threads; {len(replay.differing)} differ")


if __name__ == "__main__":
    main()

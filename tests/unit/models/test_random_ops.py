"""Every random op of a training step is the project's own dropout draw, for every shipped model.

Portable numerics pin kernels, not random number generators: PyTorch draws CPU dropout masks with
MKL's generator on Intel and its own elsewhere. So the only random op a training step may run is
s2s.models.dropout's float64 uniform draw from the seeded CPU generator. A stacked nn.LSTM with
inter-layer dropout runs ATen's own dropout instead (shown below, so the check can fail), and the
options refuse that configuration in portable mode.
"""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from s2s.models.build import build_model
from s2s.training.task import token_loss_sum

from conftest import MODEL_CONFIGS, compose_config, small_model_config

RANDOM_OPS = {"uniform_", "bernoulli_", "bernoulli", "normal_", "random_", "rand", "randn", "randint",
              "randperm", "multinomial", "exponential_", "native_dropout", "_fused_dropout", "dropout"}


class RandomOps(TorchDispatchMode):
    """Records (op name, dtype) of every random op dispatched inside the block."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, torch.dtype]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - dispatcher hook
        name = func.overloadpacket.__name__
        if name in RANDOM_OPS:
            first = args[0] if args and isinstance(args[0], torch.Tensor) else None
            self.seen.append((name, first.dtype if first is not None else None))
        return func(*args, **(kwargs or {}))


def random_ops_of_a_step(cfg: dict) -> list[tuple[str, torch.dtype]]:
    torch.manual_seed(0)
    model = build_model(cfg, 40).train()
    src = torch.randint(4, 40, (3, 7))
    lengths = torch.tensor([7, 6, 4])
    tgt = torch.randint(4, 40, (3, 6))
    with RandomOps() as recorder:
        logits = model(src, lengths, tgt[:, :-1])
        token_loss_sum(logits, tgt[:, 1:], 0.1).backward()
    return recorder.seen


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_a_training_step_draws_only_the_project_dropout(name: str) -> None:
    seen = random_ops_of_a_step(small_model_config(name, dropout=0.3))
    assert seen, f"{name}: no random op at all with dropout 0.3 (the recorder sees nothing?)"
    assert set(seen) == {("uniform_", torch.float64)}, f"{name}: {sorted(set(seen), key=str)}"


def test_a_stacked_rnn_with_dropout_draws_the_vendor_way_and_is_refused() -> None:
    cfg = small_model_config("bilstm_attn", dropout=0.3)
    cfg["encoder"]["num_layers"] = 2
    seen = random_ops_of_a_step(cfg)
    assert any(op != ("uniform_", torch.float64) for op in seen), seen
    from s2s.common.options import check_config

    problems = check_config(compose_config(["model.encoder.num_layers=2"]), ["model", "numerics"])
    assert problems and problems[0].startswith("model.encoder.num_layers=2 with model.encoder.dropout=")
    assert check_config(compose_config(["model.encoder.num_layers=2", "numerics=fast"]), ["model", "numerics"]) == []

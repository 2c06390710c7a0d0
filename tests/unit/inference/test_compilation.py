"""``train.compile`` / ``decode.compile``: the compiled decoder step computes what the eager one does.

Compilation fuses element-wise operations, so values may differ in the last bits: the loss and
gradients are compared with a tolerance, the decoded tokens exactly.  Compiling is slow on a
small CPU (tens of seconds), so each model is compiled once per module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s2s.data.dataset import collate
from s2s.inference.compilation import compile_decoder_step
from s2s.inference.search import SearchOptions, decode
from s2s.models.build import build_model
from s2s.training.task import TranslationTask

from conftest import HELPERS, small_model_config
from helpers.paths import SRC
from helpers.tiny_lightning import OPTIM, VOCAB, items

MODELS = ["bilstm_attn", "bilstm_attn_fused"]


def _pair(name: str) -> tuple[TranslationTask, TranslationTask]:
    """Two tasks with the same weights; the second's decoder step compiled."""
    tasks = []
    for _ in range(2):
        torch.manual_seed(0)
        tasks.append(TranslationTask(small_model_config(name), OPTIM, VOCAB, label_smoothing=0.1))
    assert compile_decoder_step(tasks[1].model, True, "train.compile")
    return tasks[0], tasks[1]


@pytest.fixture(scope="module", params=MODELS)
def pair(request: pytest.FixtureRequest) -> tuple[TranslationTask, TranslationTask]:
    return _pair(request.param)


def test_compiling_keeps_parameter_names_and_checkpoints(pair: tuple[TranslationTask, TranslationTask]) -> None:
    eager, compiled = pair
    assert list(compiled.state_dict()) == list(eager.state_dict())
    fresh = build_model(compiled.hparams.model, VOCAB)
    fresh.load_state_dict(compiled.model.state_dict())  # a compiled run's model.pt loads into an eager model


def test_compiled_training_loss_and_gradients_match_eager(pair: tuple[TranslationTask, TranslationTask]) -> None:
    eager, compiled = pair
    for task in pair:
        task.train()
        task.zero_grad()
    for seed, length in ((1, 5), (2, 9)):  # two shapes: dynamic shapes, no recompilation per length
        batch = collate(items(0, 6, length, seed=seed))
        losses = [task.loss_sum(batch, 0.1) for task in (eager, compiled)]
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-5)
        for loss in losses:
            loss.backward()
    grads = {n: p.grad for n, p in compiled.named_parameters()}
    for name, param in eager.named_parameters():
        assert param.grad is not None and grads[name] is not None, name
        torch.testing.assert_close(grads[name], param.grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("beam", [1, 3])
def test_compiled_search_gives_the_eager_outputs(pair: tuple[TranslationTask, TranslationTask], beam: int) -> None:
    eager, compiled = (task.model.eval() for task in pair)
    batch = collate(items(0, 7, 4, seed=5))
    opts = SearchOptions(beam_size=beam, n_best=beam, length_penalty=1.0 if beam > 1 else 0.0, max_len_b=6)
    outs = [decode(m, batch.src, batch.src_lengths, opts) for m in (eager, compiled)]
    assert [[h.tokens for h in hyps] for hyps in outs[1]] == [[h.tokens for h in hyps] for hyps in outs[0]]
    assert any(h[0].tokens for h in outs[0])  # not a vacuous comparison of empty outputs
    for a, b in zip(outs[0], outs[1], strict=True):
        assert b[0].score == pytest.approx(a[0].score, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_the_compiled_step_is_what_runs_and_new_lengths_do_not_recompile(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    graphs: list[int] = []

    def counting_backend(gm: torch.fx.GraphModule, example_inputs: list) -> object:
        graphs.append(len(gm.graph.nodes))
        return gm.forward

    real_compile = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, mode=None, dynamic=None: real_compile(
        fn, backend=counting_backend, dynamic=dynamic))  # fmt: skip
    torch._dynamo.reset()  # noqa: SLF001 - forget graphs other tests compiled
    task = _pair(name)[1]
    counts = []
    for seed, length in ((1, 5), (2, 8), (3, 11)):
        task.loss_sum(collate(items(0, 4, length, seed=seed)), 0.1).backward()
        counts.append(len(graphs))
    assert counts[0] > 0, "the decoder step was not compiled"
    assert counts[2] == counts[1], f"graphs compiled after each new length: {counts}"


@pytest.mark.skipif(
    torch.backends.cpu.get_cpu_capability() == "AVX2", reason="the CPU's native ISA is AVX2: nothing to keep apart"
)
def test_runs_under_another_vector_isa_do_not_share_compiled_kernels(tmp_path: Path) -> None:
    # numerics=portable pins ATEN_CPU_CAPABILITY=avx2, fast runs the native AVX-512: PyTorch's
    # Inductor cache key leaves the ISA out, and loading the other ISA's kernels gave NaN or a
    # segmentation fault. Each process compiles into one shared base folder, the portable one first.
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(SRC)}
    env.pop("ATEN_CPU_CAPABILITY", None)
    for isa in ("avx2", None):
        run_env = {**env, "ATEN_CPU_CAPABILITY": isa} if isa else env
        script = [sys.executable, str(HELPERS / "compiled_loss.py")]
        done = subprocess.run(script, env=run_env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"ATEN_CPU_CAPABILITY={isa}: exit {done.returncode}\n{done.stderr[-2000:]}"
        assert float(done.stdout.split()[-1]) < 1e-3, f"ATEN_CPU_CAPABILITY={isa}: loss differs from eager"
    native = torch.backends.cpu.get_cpu_capability().lower()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["isa-avx2-avx2", f"isa-{native}-auto"]

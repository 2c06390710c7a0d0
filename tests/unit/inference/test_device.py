"""Device and precision settings (s2s.inference.device), and decoding on the device the model is on."""

from __future__ import annotations

import pytest
import torch

from s2s.common.io import InputError
from s2s.inference.device import autocast, autocast_dtype, model_device, resolve_device
from s2s.inference.search import SearchOptions, decode
from s2s.models.build import build_model
from s2s.models.model_file import load_model_file, save_model_file

from conftest import small_model_config

VOCAB = 14


def tiny_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_model({**small_model_config("bilstm_attn", emb=16, enc=16, dec=16), "init_scale": 0.6}, VOCAB).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.tensor([[5, 6, 7, 8, 3], [9, 10, 3, 0, 0], [11, 4, 12, 3, 0]])
    return src, torch.tensor([5, 3, 4])


def test_auto_is_cuda_exactly_when_cuda_is_available() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("bad", ["tpu", "gpu0", "cuda:x", ""])
def test_unknown_device_is_a_user_error(bad: str) -> None:
    with pytest.raises(InputError, match="device="):
        resolve_device(bad)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_without_a_gpu_is_a_user_error() -> None:
    with pytest.raises(InputError, match="no CUDA device"):
        resolve_device("cuda")


def test_precision_settings() -> None:
    cpu = torch.device("cpu")
    assert autocast_dtype(cpu, "auto") is None  # float32 decoding on CPUs unless asked
    assert autocast_dtype(cpu, "32") is None
    assert autocast_dtype(cpu, "bf16") is torch.bfloat16
    assert autocast_dtype(cpu, "bf16-mixed") is torch.bfloat16
    with pytest.raises(InputError, match="precision="):
        autocast_dtype(cpu, "fp8")
    with pytest.raises(InputError, match="CUDA"):
        autocast_dtype(cpu, "16")


def test_autocast_context_changes_the_matmul_dtype_only_when_asked() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast(torch.device("cpu"), "bf16"):
        assert (a @ b).dtype is torch.bfloat16
    with autocast(torch.device("cpu"), "auto"):
        assert (a @ b).dtype is torch.float32


def test_bf16_decoding_runs_and_returns_float_scores() -> None:
    """precision=bf16 decodes under autocast; the search's own arithmetic stays float32."""
    model = tiny_model()
    src, lengths = batch()
    hyps = decode(model, src, lengths, SearchOptions(beam_size=3, precision="bf16"))
    assert len(hyps) == 3 and all(isinstance(h[0].log_prob, float) and h[0].log_prob < 0 for h in hyps)


@pytest.mark.requires_gpu
@pytest.mark.parametrize("beam", [1, 4])
def test_cuda_decoding_matches_cpu(beam: int) -> None:
    """The same model decodes to the same outputs on the GPU (float32) as on the CPU."""
    model = tiny_model()
    src, lengths = batch()
    opts = SearchOptions(beam_size=beam, precision="32", return_attention=True)
    on_cpu = decode(model, src, lengths, opts)
    gpu_model = tiny_model().to(resolve_device("cuda"))
    assert model_device(gpu_model).type == "cuda"
    on_gpu = decode(gpu_model, src, lengths, opts)  # CPU inputs: decode moves them to the model
    for c, g in zip(on_cpu, on_gpu, strict=True):
        assert [h.tokens for h in g] == [h.tokens for h in c]
        assert g[0].log_prob == pytest.approx(c[0].log_prob, abs=1e-4)
        assert g[0].attention.device.type == "cpu"
    # bf16 autocast on the GPU runs too (outputs may differ slightly from float32)
    assert len(decode(gpu_model, src, lengths, SearchOptions(beam_size=beam, precision="auto"))) == 3


@pytest.mark.requires_gpu
def test_model_saved_from_cuda_loads_on_cpu_and_back(tmp_path) -> None:
    """A model trained on a GPU evaluates on a CPU-only machine, and back on a GPU."""
    spm = tmp_path / "spm.model"
    spm.write_bytes(b"not really a sentencepiece model, only hashed")
    gpu_model = tiny_model().to("cuda")
    cfg = small_model_config("bilstm_attn", emb=16, enc=16, dec=16)
    save_model_file(tmp_path / "model.pt", gpu_model.state_dict(), {**cfg, "init_scale": 0.6}, VOCAB, spm)
    cpu_model, _ = load_model_file(tmp_path / "model.pt", spm)
    assert model_device(cpu_model).type == "cpu"
    src, lengths = batch()
    opts = SearchOptions(beam_size=3, precision="32")
    back = cpu_model.to(resolve_device("cuda"))
    assert [h[0].tokens for h in decode(back, src, lengths, opts)] == [
        h[0].tokens for h in decode(gpu_model, src, lengths, opts)
    ]

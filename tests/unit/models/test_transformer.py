"""The Transformer (model=transformer): cached decoding equals recomputing the prefix, masks, ties,
thread-invariant gradients, the model file and the config.

The search guarantees (beam 1 = greedy, batch invariance, n-best / top-1, exhaustive search,
teacher-forced log-probabilities) cover it through ``MODEL_CONFIGS`` in ``unit/inference/test_search.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import pytest
import torch
from torch import nn

from s2s.common.options import check_config
from s2s.inference.search import SearchOptions, beam_search, greedy_search
from s2s.models.build import build_model
from s2s.models.layer_norm import LayerNorm
from s2s.models.model_file import load_model_file, save_model_file
from s2s.models.positions import sinusoids
from s2s.models.transformer_decoder import TransformerState
from s2s.training.task import token_loss_sum

from conftest import compose_config, small_model_config
from helpers.threads import one_thread  # noqa: F401 (autouse: one torch thread)
from helpers.tiny_models import make_batch, make_model

# --- cached decoding against recomputing the whole prefix ----------------------------------------


@dataclass
class PrefixState:
    """The target prefix so far and the source's keys and values: no cache of earlier positions."""

    tokens: torch.Tensor  # (B, t)
    cross_keys: torch.Tensor
    cross_values: torch.Tensor
    mask: torch.Tensor

    def index_select(self, index: torch.Tensor) -> PrefixState:
        return PrefixState(*(getattr(self, f.name).index_select(0, index) for f in fields(self)))


class Recomputing(nn.Module):
    """Each step runs the teacher-forced decoder over the whole prefix and keeps the last position."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> PrefixState:
        state = self.model.encode(src, src_lengths)
        empty = torch.zeros(src.size(0), 0, dtype=torch.long)
        return PrefixState(empty, state.cross_keys, state.cross_values, state.mask)

    def decode_step(self, prev: torch.Tensor, state: PrefixState):
        tokens = torch.cat([state.tokens, prev.unsqueeze(1)], dim=1)
        keys = state.cross_keys
        no_cache = keys.new_zeros(*keys.shape[:3], 0, keys.size(-1))
        full = TransformerState(no_cache, no_cache, keys, state.cross_values, state.mask)
        logits = self.model.decoder(tokens, full)[:, -1]
        return torch.log_softmax(logits.float(), dim=-1), replace(state, tokens=tokens), None


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("beam", [1, 5])
def test_cached_decoding_equals_recomputing_the_prefix(beam: int, seed: int) -> None:
    model = make_model("transformer", seed=seed, eos_bias=0.5)
    src, lengths = make_batch([7, 3, 9, 5, 2, 6], seed=seed)
    opts = SearchOptions(beam_size=beam, n_best=beam, length_penalty=1.0, max_len_a=1.5, max_len_b=5)
    cached, recomputed = beam_search(model, src, lengths, opts), beam_search(Recomputing(model), src, lengths, opts)
    for a, b in zip(cached, recomputed, strict=True):
        assert [h.tokens for h in a] == [h.tokens for h in b]
        assert [h.log_prob for h in a] == pytest.approx([h.log_prob for h in b], abs=1e-5)
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
    if beam == 1:
        greedy = greedy_search(model, src, lengths, 1.5, 5)
        assert [g.tokens for g in greedy] == [g.tokens for g in greedy_search(Recomputing(model), src, lengths, 1.5, 5)]
        assert [g.tokens for g in greedy] == [hs[0].tokens for hs in cached]
    assert len({len(h.tokens) for hs in cached for h in hs}) > 2, "outputs of varied lengths"


def test_every_cached_step_equals_the_teacher_forced_position() -> None:
    model = make_model("transformer", seed=4)
    src, lengths = make_batch([6, 4, 8], seed=4)
    tgt = torch.randint(4, 14, (3, 7), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        forced = model.decoder(tgt, model.encode(src, lengths))
        state = model.encode(src, lengths)
        for t in range(tgt.size(1)):
            logits, state, weights = model.decoder.step(tgt[:, t], state)
            torch.testing.assert_close(logits, forced[:, t], rtol=1e-5, atol=1e-5)
            assert state.steps == t + 1 and state.self_keys.shape[:2] == (3, 2)
            torch.testing.assert_close(weights.sum(-1), torch.ones(3))


# --- masks ---------------------------------------------------------------------------------------


def test_padding_and_later_targets_change_nothing() -> None:
    model = make_model("transformer", seed=5)
    src, lengths = make_batch([6, 3], seed=5)
    tgt = torch.randint(4, 14, (2, 6), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        batched = model(src, lengths, tgt)
        alone = model(src[1:, :3], lengths[1:], tgt[1:])
        torch.testing.assert_close(alone[0], batched[1], rtol=1e-5, atol=1e-5)  # padding is masked
        memory, _ = model.encoder(src, lengths)
        padded = src.clone()
        padded[1, 3:] = 7  # other tokens where the length says padding: the encoder never reads them
        torch.testing.assert_close(model.encoder(padded, lengths)[0][1, :3], memory[1, :3])
        changed = tgt.clone()
        changed[:, 4:] = 5
        later = model(src, lengths, changed)
        assert torch.equal(later[:, :4], batched[:, :4])  # causal: position t never sees t + 1
        assert not torch.equal(later[:, 4:], batched[:, 4:])


# --- embeddings, positions, config ---------------------------------------------------------------


def test_shipped_recipe_shares_and_ties_the_embeddings() -> None:
    from omegaconf import OmegaConf

    cfg = compose_config(["model=transformer"])
    assert cfg.optim.scheduler == "cosine" and cfg.optim.warmup_steps > 0  # the model picks its schedule
    assert compose_config(["model=transformer", "optim=adam_plateau"]).optim.scheduler == "plateau"
    assert compose_config([]).optim.scheduler == "plateau"  # the RNN default keeps its own
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), 100)
    assert model.encoder.embedding is model.decoder.embedding
    assert model.decoder.output_layer.weight is model.decoder.embedding.weight
    assert model.decoder.pre_output is None and model.decoder.input.projection is None
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert len(norms) == 3 * 2 + 3 * 3 + 2 and all(isinstance(m, LayerNorm) for m in norms)
    assert all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert float(model.decoder.embedding.weight.detach()[0].abs().sum()) == 0.0  # padding row


def test_untied_unshared_and_projected_sizes_build() -> None:
    cfg = small_model_config("transformer", emb=8, enc=12, dec=16)
    cfg.update(share_embeddings=False, tie_output=True)
    model = build_model(cfg, 30)
    assert model.encoder.embedding is not model.decoder.embedding
    assert model.decoder.pre_output is not None and model.decoder.input.projection is not None
    src, lengths = make_batch([5, 3], vocab=30)
    assert model(src, lengths, torch.randint(4, 30, (2, 4))).shape == (2, 4, 30)


def test_positions_are_one_table_whatever_its_length() -> None:
    assert torch.equal(sinusoids(700, 32)[:256], sinusoids(256, 32))
    table = sinusoids(50, 16)
    assert torch.equal(table[0, 0::2], torch.zeros(8)) and torch.equal(table[0, 1::2], torch.ones(8))
    model = make_model("transformer")
    x = model.decoder.input(torch.zeros(1, 300, 16), offset=0)  # past the first table: it grows
    torch.testing.assert_close(x[0], sinusoids(300, 16))


def test_attention_module_and_heads_are_checked() -> None:
    cfg = small_model_config("transformer")
    cfg["attention"] = {"_target_": "s2s.models.attention.GeneralAttention"}
    with pytest.raises(Exception, match="attention=none"):  # Hydra wraps the ValueError
        build_model(cfg, 30)
    problems = check_config(compose_config(["model=transformer", "model.decoder.num_heads=3"]), ["model"])
    assert problems and problems[0].startswith("model.decoder.num_heads=3: model.decoder.hidden_size=256")


# --- portable numerics ----------------------------------------------------------------------------


def test_layer_norm_equals_pytorch_and_its_gradients_ignore_the_thread_count() -> None:
    """ATen's layer-norm backward sums the parameter gradients per thread (other bits at 1, 2, 3 threads)."""
    torch.manual_seed(0)
    x, g = torch.randn(16, 12, 64), torch.randn(16, 12, 64)
    ours, theirs = LayerNorm(64), nn.LayerNorm(64)
    with torch.no_grad():
        for norm in (ours, theirs):
            norm.weight.copy_(torch.linspace(0.5, 1.5, 64))
            norm.bias.copy_(torch.linspace(-0.1, 0.1, 64))
    runs = []
    for threads in (1, 2, 3):
        torch.set_num_threads(threads)
        xs = [x.clone().requires_grad_() for _ in range(2)]
        outs = [norm(xi) for norm, xi in zip((ours, theirs), xs)]
        for out in outs:
            out.backward(g)
        assert torch.equal(outs[0], outs[1])  # the forward is ATen's
        torch.testing.assert_close(xs[0].grad, xs[1].grad)
        torch.testing.assert_close(ours.weight.grad, theirs.weight.grad)
        torch.testing.assert_close(ours.bias.grad, theirs.bias.grad)
        runs.append([t.clone() for t in (xs[0].grad, ours.weight.grad, ours.bias.grad)])
        for p in (*ours.parameters(), *theirs.parameters()):
            p.grad = None
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


def test_a_training_step_has_the_same_gradients_at_1_and_2_threads() -> None:
    cfg = small_model_config("transformer", emb=64, enc=64, dec=64, dropout=0.1)
    grads = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build_model(cfg, 50).train()
        src, lengths = make_batch([12, 9, 11, 7] * 4, vocab=50, seed=1)
        tgt = torch.randint(4, 50, (16, 14), generator=torch.Generator().manual_seed(2))
        token_loss_sum(model(src, lengths, tgt[:, :-1]), tgt[:, 1:], 0.1).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    assert all(torch.equal(grads[0][n], grads[1][n]) for n in grads[0]), [
        n for n in grads[0] if not torch.equal(grads[0][n], grads[1][n])
    ]


def test_the_model_file_round_trips(tmp_path) -> None:
    spm = tmp_path / "spm.model"
    spm.write_bytes(b"a vocabulary")
    cfg = {**small_model_config("transformer", emb=16, enc=16, dec=16), "init": "uniform", "init_scale": 0.6}
    torch.manual_seed(6)
    model = build_model(cfg, 14)  # shared and tied, as shipped: one tensor under three keys
    save_model_file(tmp_path / "model.pt", model.state_dict(), cfg, 14, spm)
    loaded, _ = load_model_file(tmp_path / "model.pt", spm)
    assert loaded.decoder.output_layer.weight is loaded.encoder.embedding.weight
    src, lengths = make_batch([5, 7], seed=6)
    opts = SearchOptions(beam_size=5, n_best=2)
    assert [[h.tokens for h in hs] for hs in beam_search(loaded, src, lengths, opts)] == [
        [h.tokens for h in hs] for hs in beam_search(model.eval(), src, lengths, opts)
    ]

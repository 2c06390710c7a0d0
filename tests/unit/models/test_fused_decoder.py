"""The fused-recurrence (GNMT-style) decoder: whole-sequence recurrent calls, same search interface.

conf/model/bilstm_attn_fused.yaml is in MODEL_CONFIGS, so the search tests (greedy = beam 1,
exhaustive search, batch invariance, n-best) and the learning test of test_seq2seq_learning.py cover it
too; here are the properties of the fused decoder itself, over its variants (GRU, several layers,
no attention).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from s2s.data.dataset import collate
from s2s.inference.search import SearchOptions, beam_search, greedy_search
from s2s.models.build import build_model
from s2s.models.fused_decoder import FusedRNNDecoder
from s2s.tokens import BOS_ID, PAD_ID

from conftest import small_model_config
from helpers.tiny_models import VOCAB, reverse_task

VARIANTS = [
    ("lstm", 1, "additive"),
    ("gru", 1, "additive"),
    ("lstm", 3, "general"),
    ("gru", 2, "scaled_dot"),
    ("lstm", 2, "none"),
]


def fused_config(rnn_type: str, layers: int, attention: str, **sizes: int) -> dict:
    cfg = small_model_config("bilstm_attn_fused", **sizes)
    cfg["encoder"]["rnn_type"] = cfg["decoder"]["rnn_type"] = rnn_type
    cfg["decoder"]["num_layers"] = layers
    if attention == "none":
        cfg["attention"] = {"_target_": None}
    else:
        name = {"additive": "Additive", "general": "General", "scaled_dot": "ScaledDot"}[attention]
        cfg["attention"] = {"_target_": f"s2s.models.attention.{name}Attention"}
    return cfg


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([5, 2, 7, 4])
    src = torch.zeros(4, 7, dtype=torch.long)
    tgt = torch.zeros(4, 6, dtype=torch.long)
    for i, n in enumerate(lengths.tolist()):
        src[i, :n] = torch.randint(4, VOCAB, (n,), generator=g)
        tgt[i, : 1 + i] = torch.randint(4, VOCAB, (1 + i,), generator=g)
    tgt_in = torch.cat([torch.full((4, 1), BOS_ID), tgt[:, :-1]], dim=1)
    return src, lengths, tgt_in


@pytest.mark.parametrize("variant", VARIANTS)
def test_teacher_forcing_equals_step_by_step_decoding(variant: tuple) -> None:
    """Training's whole-sequence calls compute what search's single steps compute."""
    torch.manual_seed(0)
    model = build_model(fused_config(*variant), VOCAB).eval()
    assert isinstance(model.decoder, FusedRNNDecoder)
    src, lengths, tgt_in = batch()
    with torch.no_grad():
        whole = torch.log_softmax(model(src, lengths, tgt_in), dim=-1)
        state = model.encode(src, lengths)
        steps = []
        for t in range(tgt_in.size(1)):
            log_probs, state, weights = model.decode_step(tgt_in[:, t], state)
            steps.append(log_probs)
            assert (weights is None) == (variant[2] == "none")
    torch.testing.assert_close(torch.stack(steps, dim=1), whole, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [("lstm", 1, "additive"), ("gru", 3, "additive")])
def test_training_runs_each_recurrent_stack_once_over_the_whole_sequence(variant: tuple) -> None:
    torch.manual_seed(0)
    model = build_model(fused_config(*variant), VOCAB).train()
    calls: list[tuple[int, ...]] = []
    rnns = [m for m in model.decoder.modules() if isinstance(m, torch.nn.RNNBase)]
    assert len(rnns) == (1 if variant[1] == 1 else 2)
    for rnn in rnns:
        rnn.register_forward_hook(lambda mod, args, out: calls.append(tuple(args[0].shape)))
    src, lengths, tgt_in = batch()
    model(src, lengths, tgt_in).sum().backward()
    assert calls and all(shape[:2] == tuple(tgt_in.shape) for shape in calls)
    assert len(calls) == len(rnns)


@pytest.mark.parametrize("variant", [("gru", 2, "additive")])
def test_fused_variant_learns_reverse_task(variant: tuple) -> None:
    """A two-layer GRU variant (not a shipped config) learns to reverse sequences."""
    torch.manual_seed(0)
    model = build_model(fused_config(*variant, emb=32, enc=64, dec=128), vocab_size=VOCAB)
    train = reverse_task(4000, seed=1)
    test = reverse_task(200, seed=2)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(3)
    model.train()
    for _step in range(500):
        idx = torch.randint(0, len(train), (64,), generator=g).tolist()
        b = collate([train[i] for i in idx])
        logits = model(b.src, b.src_lengths, b.tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), b.tgt_out.reshape(-1), ignore_index=PAD_ID)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    t = collate(test)
    hyps = greedy_search(model, t.src, t.src_lengths, 1.5, 5)
    exact = sum(h.tokens == r.tolist() for h, (_, _, r) in zip(hyps, test, strict=True)) / len(test)
    assert exact >= 0.95, f"exact match {exact:.2%}"
    beam = beam_search(model, t.src, t.src_lengths, SearchOptions(beam_size=4, max_len_a=1.5, max_len_b=5))
    assert sum(h[0].tokens == r.tolist() for h, (_, _, r) in zip(beam, test, strict=True)) / len(test) >= 0.95

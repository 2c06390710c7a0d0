"""Beam search: agreement with greedy, exhaustive search and a plain reference; constraints; batching."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from s2s.inference.search import SearchOptions, beam_search, decode, greedy_search, length_penalty, max_output_length
from s2s.tokens import BOS_ID, EOS_ID

from conftest import MODEL_CONFIGS
from helpers.threads import one_thread  # noqa: F401 (autouse: one torch thread)
from helpers.tiny_models import make_batch, make_model


def lp(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha


def teacher_forced_log_prob(model: nn.Module, src: torch.Tensor, length: torch.Tensor, tokens: list[int]) -> float:
    tgt_in = torch.tensor([[BOS_ID, *tokens]])
    with torch.no_grad():
        logp = torch.log_softmax(model(src, length, tgt_in).float(), dim=-1)[0]
    return float(logp.gather(1, torch.tensor([*tokens, EOS_ID]).unsqueeze(1)).sum())


def has_repeated_ngram(tokens: list[int], n: int) -> bool:
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) != len(set(grams))


# --- beam 1 and greedy -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_beam_size_one_equals_greedy(name: str, seed: int) -> None:
    model = make_model(name, seed=seed)
    src, lengths = make_batch([6, 3, 8, 4, 5, 2, 7, 3], seed=seed)
    greedy = greedy_search(model, src, lengths, 1.0, 4, return_attention=True)
    opts = SearchOptions(beam_size=1, n_best=1, length_penalty=0.0, max_len_a=1.0, max_len_b=4, return_attention=True)
    beam = beam_search(model, src, lengths, opts)
    for g, [b], n in zip(greedy, beam, lengths.tolist(), strict=True):
        assert b.tokens == g.tokens
        # equal up to float noise: greedy keeps decoding finished rows, beam search drops them
        assert b.log_prob == pytest.approx(g.log_prob, abs=1e-5)
        if g.attention is None:
            assert b.attention is None
        else:
            torch.testing.assert_close(b.attention, g.attention[:, :n])
    # decode() with beam 1 is greedy
    via_decode = decode(model, src, lengths, SearchOptions(beam_size=1, max_len_a=1.0, max_len_b=4))
    assert [[h.tokens for h in hs] for hs in via_decode] == [[g.tokens] for g in greedy]
    assert [hs[0].log_prob for hs in via_decode] == [g.log_prob for g in greedy]


def test_beam_size_one_test_models_end_at_varied_lengths() -> None:
    """Precondition of the test above: greedy outputs of the test models end before their limits."""
    ended = []
    for name in MODEL_CONFIGS:
        for seed in (0, 1):
            src, lengths = make_batch([6, 3, 8, 4, 5, 2, 7, 3], seed=seed)
            limits = max_output_length(lengths, 1.0, 4).tolist()
            hyps = greedy_search(make_model(name, seed=seed), src, lengths, 1.0, 4)
            ended += [len(h.tokens) + 1 < lim for h, lim in zip(hyps, limits)]
    assert 0.2 < sum(ended) / len(ended) < 0.9, "the test models should end some outputs early, not all"


# --- exactness -----------------------------------------------------------------------------------


def exhaustive(model: nn.Module, src: torch.Tensor, length: torch.Tensor, limit: int, alpha: float):
    """Every output of at most ``limit`` tokens including EOS, EOS forced at the limit: (score, log p, tokens)."""
    with torch.no_grad():
        state = model.encode(src, length)
        prefixes, logps = [[]], torch.zeros(1)
        out = []
        for t in range(limit):
            log_probs, state, _ = model.decode_step(torch.tensor([p[-1] if p else BOS_ID for p in prefixes]), state)
            for p, base, row in zip(prefixes, logps.tolist(), log_probs):
                eos = base + float(row[EOS_ID])
                out.append((eos / lp(t + 1, alpha), eos, p))
            if t == limit - 1:
                break
            rows, new_prefixes, new_logps = [], [], []
            for i, p in enumerate(prefixes):
                for v in range(log_probs.size(1)):
                    if v != EOS_ID:
                        rows.append(i)
                        new_prefixes.append([*p, v])
                        new_logps.append(logps[i] + log_probs[i, v])
            state = state.index_select(torch.tensor(rows))
            prefixes, logps = new_prefixes, torch.stack(new_logps)
    return sorted(out, key=lambda x: -x[0])


@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_large_beam_equals_exhaustive_search(name: str, alpha: float) -> None:
    vocab, limit = 10, 4
    model = make_model(name, vocab=vocab, eos_bias=0.0, sharpen=2.0)
    src, lengths = make_batch([5, 3, 4], vocab=vocab, seed=1)
    # 9 ** 3 + ... prefixes: a beam of 1000 never prunes anything
    opts = SearchOptions(beam_size=1000, n_best=5, length_penalty=alpha, max_len_a=0.0, max_len_b=limit)
    result = beam_search(model, src, lengths, opts)
    for i in range(src.size(0)):
        n = int(lengths[i])
        truth = exhaustive(model, src[i : i + 1, :n], lengths[i : i + 1], limit, alpha)
        assert len(truth) == 1 + 9 + 81 + 729
        best = result[i][0]
        assert best.score == pytest.approx(truth[0][0], abs=1e-5)
        assert best.log_prob == pytest.approx(truth[0][1], abs=1e-5)
        if truth[0][0] - truth[1][0] > 1e-4:
            assert best.tokens == truth[0][2]
        assert [h.score for h in result[i]] == pytest.approx([s for s, _, _ in truth[:5]], abs=1e-5)


def reference_beam(model: nn.Module, src: torch.Tensor, length: torch.Tensor, opts: SearchOptions):
    """A plain one-sentence beam search that never stops early: it runs to the length limit.

    Same rules as the batched search: of the 2K best extensions, those ending in EOS among the
    first K finish, the K best others stay live; at the limit every live hypothesis gets EOS.
    """
    k, alpha = opts.beam_size, opts.length_penalty
    limit = int(max_output_length(length, opts.max_len_a, opts.max_len_b)[0])
    with torch.no_grad():
        state = model.encode(src, length)
        live = [([], 0.0)]
        finished = []
        for t in range(limit):
            log_probs, state, _ = model.decode_step(torch.tensor([h[-1] if h else BOS_ID for h, _ in live]), state)
            rows = log_probs.tolist()
            if t == limit - 1:
                finished += [(h, s + row[EOS_ID]) for (h, s), row in zip(live, rows)]
                break
            cands = [
                (s + x, i, v)
                for i, ((h, s), row) in enumerate(zip(live, rows))
                for v, x in enumerate(row)
                if v != EOS_ID or t >= opts.min_len
            ]
            cands.sort(key=lambda c: -c[0])
            cands = cands[: 2 * k]
            finished += [(live[i][0], s) for r, (s, i, v) in enumerate(cands) if v == EOS_ID and r < k]
            keep = [(s, i, v) for s, i, v in cands if v != EOS_ID][:k]
            state = state.index_select(torch.tensor([i for _, i, _ in keep]))
            live = [([*live[i][0], v], s) for s, i, v in keep]
    scored = [(s / lp(len(h) + 1, alpha), s, h) for h, s in finished]
    return sorted(scored, key=lambda x: -x[0])[: opts.n_best]


class CountingModel(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.steps = model, 0

    def encode(self, src, src_lengths):
        return self.model.encode(src, src_lengths)

    def decode_step(self, prev, state):
        self.steps += 1
        return self.model.decode_step(prev, state)


@pytest.mark.parametrize("top1", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
@pytest.mark.parametrize("beam", [2, 4])
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_early_stopping_loses_nothing(name: str, beam: int, alpha: float, top1: bool) -> None:
    """The batched search, which stops sentences early, equals a reference that runs to the limit.

    With n_best 1 a sentence stops as soon as its best finished hypothesis can no longer be beaten,
    which is earlier than with n_best = K: the top-1 must still be the reference's.
    """
    n_best = 1 if top1 else beam
    opts = SearchOptions(beam_size=beam, n_best=n_best, length_penalty=alpha, max_len_a=2.0, max_len_b=6, min_len=1)
    stopped_early = 0
    for seed, eos_bias in [(0, 1.0), (1, 1.0), (2, 2.5)]:
        model = make_model(name, seed=seed, eos_bias=eos_bias)
        src, lengths = make_batch([7, 4, 9, 5, 6], seed=seed)
        result = beam_search(model, src, lengths, opts)
        for i in range(src.size(0)):
            n = int(lengths[i])
            counting = CountingModel(model)
            beam_search(counting, src[i : i + 1, :n], lengths[i : i + 1], opts)
            stopped_early += counting.steps < int(max_output_length(lengths[i : i + 1], 2.0, 6))
            ref = reference_beam(model, src[i : i + 1, :n], lengths[i : i + 1], opts)
            assert [h.tokens for h in result[i]] == [h for _, _, h in ref]
            assert [h.score for h in result[i]] == pytest.approx([s for s, _, _ in ref], rel=1e-6, abs=1e-5)
    if alpha <= 1.0:  # with a strong length penalty the bound rarely allows stopping before the limit
        assert stopped_early >= 2, "some sentences should stop before their length limit"


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_larger_beam_never_scores_lower_without_length_penalty(name: str) -> None:
    """Beam search is not monotone in general, but no beam may beat one too large to prune anything."""
    vocab, limit = 10, 4
    model = make_model(name, vocab=vocab, eos_bias=0.0, sharpen=2.0)
    src, lengths = make_batch([5, 3, 4, 6], vocab=vocab, seed=3)
    best = {}
    for k in [1, 2, 3, 5, 8, 1000]:
        opts = SearchOptions(beam_size=k, length_penalty=0.0, max_len_a=0.0, max_len_b=limit)
        best[k] = [hs[0].score for hs in beam_search(model, src, lengths, opts)]
        for hs in beam_search(model, src, lengths, opts):
            assert hs[0].score == hs[0].log_prob  # alpha 0: the raw log-probability
    for k, scores in best.items():
        for small, large in zip(scores, best[1000]):
            assert small <= large + 1e-5, f"beam {k} beat the exhaustive beam"
    # the beam that prunes nothing finds strictly better outputs than greedy for some sentence here
    assert any(large > small + 1e-4 for small, large in zip(best[1], best[1000]))


# --- batching and n-best -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra", [{}, {"no_repeat_ngram_size": 2, "min_len": 2}, {"length_penalty": 0.0, "n_best": 1}]
)
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_batch_invariance(name: str, extra: dict) -> None:
    model = make_model(name)
    src, lengths = make_batch([7, 3, 9, 5, 2, 6], seed=4)
    opts = SearchOptions(**{"beam_size": 4, "n_best": 3, "length_penalty": 1.0, "return_attention": True, **extra})
    batched = beam_search(model, src, lengths, opts)
    for i in range(src.size(0)):
        n = int(lengths[i])
        [alone] = beam_search(model, src[i : i + 1, :n], lengths[i : i + 1], opts)
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]], abs=1e-5)
        assert [h.log_prob for h in alone] == pytest.approx([h.log_prob for h in batched[i]], abs=1e-5)
        for a, b in zip(alone, batched[i]):
            if a.attention is None:
                assert b.attention is None and name == "lstm_noattn"
            else:
                assert a.attention.shape == (len(a.tokens) + 1, n)
                torch.testing.assert_close(a.attention, b.attention, atol=1e-5, rtol=1e-4)
                torch.testing.assert_close(a.attention.sum(-1), torch.ones(len(a.tokens) + 1))


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_top1_does_not_depend_on_n_best(name: str) -> None:
    model = make_model(name)
    src, lengths = make_batch([7, 3, 9, 5], seed=5)
    runs = {}
    for n_best in range(1, 6):
        opts = SearchOptions(beam_size=5, n_best=n_best, length_penalty=1.0)
        runs[n_best] = beam_search(model, src, lengths, opts)
    for n_best, result in runs.items():
        for hyps, longest in zip(result, runs[5]):
            assert 1 <= len(hyps) <= n_best
            assert [h.tokens for h in hyps] == [h.tokens for h in longest[: len(hyps)]]
            assert [h.score for h in hyps] == sorted((h.score for h in hyps), reverse=True)
    assert any(len({tuple(h.tokens) for h in hyps}) == 5 for hyps in runs[5]), "n-best should be distinct"
    for hyps in runs[5]:
        assert len({tuple(h.tokens) for h in hyps}) == len(hyps), "no duplicate hypotheses"


@pytest.mark.parametrize(
    "extra", [{}, {"min_len": 3, "no_repeat_ngram_size": 2}, {"max_len_a": 0.0, "max_len_b": 3}]
)
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_log_prob_matches_teacher_forcing(name: str, extra: dict) -> None:
    model = make_model(name)
    src, lengths = make_batch([7, 3, 9, 5], seed=6)
    opts = SearchOptions(**{"beam_size": 4, "n_best": 4, "length_penalty": 1.0, **extra})
    for i, hyps in enumerate(beam_search(model, src, lengths, opts)):
        n = int(lengths[i])
        for h in hyps:
            expected = teacher_forced_log_prob(model, src[i : i + 1, :n], lengths[i : i + 1], h.tokens)
            assert h.log_prob == pytest.approx(expected, abs=1e-4)
            assert h.score == pytest.approx(h.log_prob / lp(len(h.tokens) + 1, 1.0), abs=1e-5)


# --- limits and constraints ----------------------------------------------------------------------


@pytest.mark.parametrize("a,b", [(0.0, 1), (0.0, 3), (0.5, 2), (1.5, 1)])
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_length_limit_respected_and_never_empty(name: str, a: float, b: int) -> None:
    model = make_model(name, eos_bias=-30.0)  # EOS never wins: every hypothesis runs into the limit
    src, lengths = make_batch([7, 3, 9, 5, 2], seed=7)
    opts = SearchOptions(beam_size=3, n_best=3, length_penalty=1.0, max_len_a=a, max_len_b=b)
    limits = max_output_length(lengths, a, b).tolist()
    for i, hyps in enumerate(beam_search(model, src, lengths, opts)):
        assert len(hyps) >= 1
        for h in hyps:
            assert len(h.tokens) == limits[i] - 1  # the forced EOS is the limit-th token
            n = int(lengths[i])
            expected = teacher_forced_log_prob(model, src[i : i + 1, :n], lengths[i : i + 1], h.tokens)
            assert h.log_prob == pytest.approx(expected, abs=1e-4)  # includes the forced EOS
            assert h.log_prob < -25  # ... whose log-probability is very low here


def test_impossible_constraints_still_return_a_hypothesis() -> None:
    # no token may repeat and EOS is forbidden for 30 tokens: every extension dies after 13 tokens
    model = make_model("bilstm_attn")
    src, lengths = make_batch([5, 2], seed=8)
    opts = SearchOptions(beam_size=3, n_best=2, min_len=30, no_repeat_ngram_size=1, max_len_a=0.0, max_len_b=20)
    for hyps in beam_search(model, src, lengths, opts):
        assert len(hyps) >= 1 and len(hyps[0].tokens) <= 19


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_min_len_respected(name: str) -> None:
    model = make_model(name, eos_bias=4.0)  # EOS is likely early
    src, lengths = make_batch([7, 3, 9, 5], seed=9)
    base = dict(beam_size=4, n_best=4, length_penalty=0.0)
    free = beam_search(model, src, lengths, SearchOptions(**base))
    assert min(len(h.tokens) for hs in free for h in hs) < 3, "precondition: short outputs without min_len"
    for hyps in beam_search(model, src, lengths, SearchOptions(**base, min_len=3)):
        assert hyps and all(len(h.tokens) >= 3 for h in hyps)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_no_repeat_ngram_respected(name: str, n: int) -> None:
    model = make_model(name, eos_bias=-2.0)
    src, lengths = make_batch([7, 3, 9, 5], seed=10)
    base = dict(beam_size=4, n_best=4, length_penalty=1.0, max_len_a=2.0, max_len_b=8)
    free = beam_search(model, src, lengths, SearchOptions(**base))
    assert any(has_repeated_ngram(h.tokens, n) for hs in free for h in hs), "precondition: repeats without blocking"
    for hyps in beam_search(model, src, lengths, SearchOptions(**base, no_repeat_ngram_size=n)):
        assert hyps
        for h in hyps:
            assert not has_repeated_ngram(h.tokens, n), h.tokens


def test_n_best_larger_than_beam_raises() -> None:
    model = make_model("bilstm_attn")
    src, lengths = make_batch([4, 3])
    with pytest.raises(ValueError, match="n_best"):
        beam_search(model, src, lengths, SearchOptions(beam_size=3, n_best=4))
    with pytest.raises(ValueError, match="n_best"):
        decode(model, src, lengths, SearchOptions(beam_size=1, n_best=2))
    with pytest.raises(ValueError):
        beam_search(model, src, lengths, SearchOptions(beam_size=2, n_best=0))


def test_empty_batch() -> None:
    model = make_model("bilstm_attn")
    empty = torch.zeros(0, 3, dtype=torch.long)
    assert beam_search(model, empty, torch.zeros(0, dtype=torch.long), SearchOptions()) == []


def test_length_penalty_formula() -> None:
    assert length_penalty(1, 1.0) == 1.0 and length_penalty(9, 0.0) == 1.0
    assert math.isclose(length_penalty(7, 0.5), math.sqrt(2.0))
    assert math.isclose(float(length_penalty(torch.tensor(13.0), 2.0)), 9.0)

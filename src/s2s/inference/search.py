"""Greedy and beam search over any model exposing ``encode`` and ``decode_step`` (plain PyTorch).

What beam search carries between its steps (beams, sentences, ranked extensions) is in
:mod:`s2s.inference.beam_state`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

from s2s.inference.beam_state import Beams, Extensions, Sentences, length_penalty, state_fields, unchanged_fields
from s2s.inference.device import autocast, model_device
from s2s.tokens import BOS_ID, EOS_ID, PAD_ID


@dataclass
class Hypothesis:
    """One output: tokens (without BOS/EOS), total log-probability, normalised score, attention (T, S)."""

    tokens: list[int]
    log_prob: float
    score: float
    attention: torch.Tensor | None = None


def max_output_length(src_lengths: torch.Tensor, a: float, b: int) -> torch.Tensor:
    """Per-sentence limit a * src_len + b (at least 1)."""
    return torch.clamp((src_lengths.float() * a + b).long(), min=1)


@torch.no_grad()
def greedy_search(
    model: torch.nn.Module,
    src: torch.Tensor,
    src_lengths: torch.Tensor,
    max_len_a: float = 1.5,
    max_len_b: int = 10,
    return_attention: bool = False,
) -> list[Hypothesis]:
    """Batched greedy decoding; each sentence stops at EOS or at its own length limit."""
    batch = src.size(0)
    state = model.encode(src, src_lengths)
    limits = max_output_length(src_lengths, max_len_a, max_len_b).to(src.device)
    max_steps = int(limits.max())
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=src.device)
    tokens, scores, attns = [], torch.zeros(batch, device=src.device), []
    for t in range(max_steps):
        log_probs, state, weights = model.decode_step(prev, state)
        # at the limit, EOS is forced so that the output length never exceeds it
        at_limit = (t >= limits - 1) & ~finished
        best_lp, best = log_probs.max(dim=-1)
        best = torch.where(at_limit, torch.full_like(best, EOS_ID), best)
        best_lp = torch.where(at_limit, log_probs[:, EOS_ID], best_lp)
        best = torch.where(finished, torch.full_like(best, PAD_ID), best)
        scores += torch.where(finished, torch.zeros_like(best_lp), best_lp)
        tokens.append(best)
        if return_attention and weights is not None:
            attns.append(weights)
        finished |= best == EOS_ID
        prev = best
        if bool(finished.all()):
            break
    out = torch.stack(tokens, dim=1).tolist()
    hyps = []
    for i, seq in enumerate(out):
        seq = seq[: seq.index(EOS_ID)] if EOS_ID in seq else seq
        attention = torch.stack(attns, dim=1)[i, : len(seq) + 1].cpu() if attns else None
        hyps.append(Hypothesis(seq, float(scores[i]), float(scores[i]) / (len(seq) + 1), attention))
    return hyps


@dataclass
class SearchOptions:
    """Decoding options (the ``decode`` config group)."""

    beam_size: int = 5
    length_penalty: float = 1.0  # GNMT alpha; 0 = raw log-probability
    max_len_a: float = 1.5
    max_len_b: int = 10
    min_len: int = 0
    n_best: int = 1
    no_repeat_ngram_size: int = 0
    return_attention: bool = False
    precision: str = "auto"  # autocast in decode(): auto = bf16 on GPUs that support it, else float32

    @classmethod
    def from_config(cls, cfg: Any) -> SearchOptions:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in dict(cfg).items() if k in names})


def _ngram_ban(history: torch.Tensor, n: int, vocab_size: int) -> torch.Tensor:
    """(R, V) bool: tokens that would repeat an n-gram already in each row of ``history`` (R, t)."""
    rows, t = history.shape
    banned = torch.zeros(rows, vocab_size, device=history.device)
    if t < n or n <= 0:
        return banned.bool()
    windows = history.unfold(1, n, 1)  # (R, t - n + 1, n)
    if n > 1:
        match = (windows[:, :, : n - 1] == history[:, t - n + 1 :].unsqueeze(1)).all(dim=-1)
    else:
        match = torch.ones(windows.shape[:2], dtype=torch.bool, device=history.device)
    banned.scatter_add_(1, windows[:, :, n - 1], match.to(banned.dtype))
    return banned > 0


@torch.no_grad()
def beam_search(
    model: torch.nn.Module, src: torch.Tensor, src_lengths: torch.Tensor, opts: SearchOptions
) -> list[list[Hypothesis]]:
    """Batched beam search: the ``n_best`` best finished hypotheses per sentence, best first.

    All sentences' beams advance together as one (N * K) batch.  Each step the ``2K`` best
    extensions of the live beams are ranked; extensions ending in EOS among the first ``K`` are
    finished (they never grow again), and the ``K`` best others stay live.  Scores are
    ``log p / lp(len)`` with the GNMT length penalty (``len`` includes EOS; alpha 0: raw log p).
    A sentence is done when it holds ``n_best`` finished hypotheses and no live one can still beat
    the worst of them, so its output can no longer change (log p only decreases, so
    ``log p / lp(limit)`` bounds a live hypothesis for alpha >= 0), or at its length limit
    ``a * src_len + b``, where every live hypothesis is finished with a forced EOS.  Done sentences
    leave the batch, so late steps get cheaper.
    """
    beam, alpha = int(opts.beam_size), float(opts.length_penalty)
    if beam < 1:
        raise ValueError(f"beam_size={beam}: must be at least 1")
    if not 1 <= opts.n_best <= beam:
        raise ValueError(f"n_best={opts.n_best}: must be between 1 and beam_size={beam}")
    batch, device = src.size(0), src.device
    if batch == 0:
        return []
    state = model.encode(src, src_lengths)
    sents = Sentences.start(max_output_length(src_lengths, opts.max_len_a, opts.max_len_b).to(device), alpha, beam)
    max_steps = int(sents.limits.max())

    # step 0 once per sentence: all K beams start equal, so they are expanded after it
    first_log_probs, first_state, first_weights = model.decode_step(
        torch.full((batch,), BOS_ID, dtype=torch.long, device=device), state
    )
    # fields of the state still equal across each sentence's beams (encoder outputs, masks): only
    # removing sentences changes them, so the per-step reordering can skip copying them
    shared = unchanged_fields(state, first_state, state_fields(state))
    expand = torch.arange(batch, device=device).repeat_interleave(beam)
    beams = Beams.start(first_state.index_select(expand), batch, beam, shared, device)
    # finished hypotheses, one record per step: (sentence ids, tokens, log-probs, scores, attention)
    records: list[tuple[torch.Tensor, ...]] = []

    for t in range(max_steps):
        if t == 0:
            log_probs = first_log_probs.index_select(0, expand)
            weights = None if first_weights is None else first_weights.index_select(0, expand)
        else:
            log_probs, weights = beams.decode(model)
        log_probs = log_probs.float()
        at_limit = t >= sents.limits - 1  # (n,)
        forced_ok, eos_lp = _forced_ends(log_probs, beams.scores, at_limit, sents.fin_count)
        ranked = _rank_extensions(_constrain(log_probs, t, opts, beams.history), beams.scores)
        eos_ok = _ordinary_ends(ranked, beam, at_limit)
        forced = (forced_ok, eos_lp) if bool(at_limit.any()) else None
        step_weights = weights if opts.return_attention else None
        _record_finished(records, sents, beams, step_weights, length_penalty(t + 1, alpha), eos_ok, ranked, forced)
        live = ranked.live(beam)
        done = _sentences_done(sents, live.scores, at_limit, t, alpha, int(opts.n_best))
        if bool(done.all()):
            break
        keep = (~done).nonzero(as_tuple=True)[0]
        beams = beams.advance(keep, live, weights, opts.return_attention)
        sents = sents.select(keep)

    return _collect(records, batch, int(opts.n_best), src_lengths)


def _forced_ends(
    log_probs: torch.Tensor, scores: torch.Tensor, at_limit: torch.Tensor, fin_count: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hypotheses forced to end here (length limit): every live beam gets EOS.

    Returns the (n, K) mask of those finished and their log-probabilities with EOS.
    """
    n, beam = scores.shape
    eos_lp = scores + log_probs[:, EOS_ID].view(n, beam)
    forced_ok = at_limit.unsqueeze(1) & torch.isfinite(eos_lp)
    # never return an empty list: with nothing finite, keep beam 0 of a sentence with no result
    fallback = at_limit & (fin_count == 0) & ~forced_ok.any(dim=1)
    forced_ok[:, 0] |= fallback
    return forced_ok, eos_lp


def _constrain(log_probs: torch.Tensor, t: int, opts: SearchOptions, history: torch.Tensor) -> torch.Tensor:
    """The log-probabilities with EOS banned before ``min_len`` and repeated n-grams banned."""
    ngram = int(opts.no_repeat_ngram_size)
    if t >= opts.min_len and ngram <= 0:
        return log_probs
    masked = log_probs.clone()
    if t < opts.min_len:
        masked[:, EOS_ID] = float("-inf")
    if ngram > 0 and t >= ngram:
        masked.masked_fill_(_ngram_ban(history, ngram, masked.size(-1)), float("-inf"))
    return masked


def _rank_extensions(masked: torch.Tensor, scores: torch.Tensor) -> Extensions:
    """The ``2K`` best extensions of each sentence's live beams, best first.

    The 2K best of each beam hold the 2K best of the sentence: rank those (cheaper than all K * V).
    """
    n, beam = scores.shape
    width = min(2 * beam, masked.size(-1))
    row_lp, row_tok = masked.topk(width, dim=1)  # (n * K, width)
    cand = (scores.unsqueeze(-1) + row_lp.view(n, beam, width)).view(n, beam * width)
    top_scores, top_pos = cand.topk(min(2 * beam, beam * width), dim=1)
    top_beam = torch.div(top_pos, width, rounding_mode="floor")
    return Extensions(top_scores, top_beam, row_tok.view(n, beam * width).gather(1, top_pos))


def _ordinary_ends(ranked: Extensions, beam: int, at_limit: torch.Tensor) -> torch.Tensor:
    """(n, 2K) mask: extensions ending in EOS among the first K finish (at the limit all are forced)."""
    rank = torch.arange(ranked.scores.size(1), device=ranked.scores.device)
    is_eos = ranked.tok == EOS_ID
    return is_eos & (rank < beam) & torch.isfinite(ranked.scores) & ~at_limit.unsqueeze(1)


def _record_finished(
    records: list[tuple[torch.Tensor, ...]],
    sents: Sentences,
    beams: Beams,
    weights: torch.Tensor | None,
    lp_now: float,
    eos_ok: torch.Tensor,
    ranked: Extensions,
    forced: tuple[torch.Tensor, torch.Tensor] | None,
) -> None:
    """Record the finished hypotheses, the ordinary ones (``eos_ok`` among ``ranked``) then those
    forced at the length limit (``forced``: mask and log-probability per beam), and update the
    sentences' finished counts and best finished scores."""
    n, beam = beams.scores.shape
    new_fin = [_finish(records, sents.ids, beams, weights, lp_now, eos_ok, ranked.beam, ranked.scores)]
    fin_count = sents.fin_count + eos_ok.sum(dim=1)
    if forced is not None:
        forced_ok, eos_lp = forced
        offsets = torch.arange(beam, device=eos_lp.device).expand(n, beam)
        new_fin.append(_finish(records, sents.ids, beams, weights, lp_now, forced_ok, offsets, eos_lp))
        fin_count = fin_count + forced_ok.sum(dim=1)
    sents.fin_count = fin_count
    sents.fin_best = torch.cat([sents.fin_best, *new_fin], dim=1).topk(beam, dim=1).values


def _sentences_done(
    sents: Sentences, live_scores: torch.Tensor, at_limit: torch.Tensor, t: int, alpha: float, n_best: int
) -> torch.Tensor:
    """(n,) which sentences' outputs can no longer change."""
    best_live = live_scores.max(dim=1).values
    bound = best_live / (sents.lp_limit if sents.lp_limit is not None else length_penalty(t + 2, alpha))
    # only the n_best best are returned: once no live hypothesis can beat the n_best-th finished
    # one, later hypotheses cannot enter the output (ties keep the earlier one), so stop there
    worst_fin = sents.fin_best[:, n_best - 1]
    done = at_limit | (torch.isfinite(worst_fin) & (bound <= worst_fin))
    done |= (sents.fin_count > 0) & ~torch.isfinite(best_live)
    return done


def _finish(
    records: list[tuple[torch.Tensor, ...]],
    sent_ids: torch.Tensor,
    beams: Beams,
    weights: torch.Tensor | None,
    lp_now: float,
    mask: torch.Tensor,
    src_beam: torch.Tensor,
    logp: torch.Tensor,
) -> torch.Tensor:
    """Store the hypotheses selected by ``mask`` (n, C) as finished; returns their scores (-inf elsewhere)."""
    scores = torch.where(mask, logp / lp_now, torch.full_like(logp, float("-inf")))
    sel_sent, sel_col = mask.nonzero(as_tuple=True)
    if sel_sent.numel() == 0:
        return scores
    beam = beams.scores.size(1)
    rows = sel_sent * beam + src_beam[sel_sent, sel_col]
    att = None
    if weights is not None:
        cur = weights.index_select(0, rows).unsqueeze(1)
        att = cur if beams.attn_history is None else torch.cat([beams.attn_history.index_select(0, rows), cur], dim=1)
    lps = logp[sel_sent, sel_col]
    records.append((sent_ids[sel_sent], beams.history.index_select(0, rows), lps, scores[sel_sent, sel_col], att))
    return scores


def _collect(
    records: list[tuple[torch.Tensor, ...]], batch: int, n_best: int, src_lengths: torch.Tensor
) -> list[list[Hypothesis]]:
    """Group the finished hypotheses by sentence; the n best by score (ties: first finished first)."""
    found: list[list[tuple[float, int, Hypothesis]]] = [[] for _ in range(batch)]
    lengths = src_lengths.tolist()
    order = 0
    for sents, toks, lps, scs, att in records:
        for j, (i, seq, lp, sc) in enumerate(zip(sents.tolist(), toks.tolist(), lps.tolist(), scs.tolist())):
            a = att[j, :, : lengths[i]].cpu() if att is not None else None
            found[i].append((sc, order, Hypothesis(seq, lp, sc, a)))
            order += 1
    out = []
    for hyps in found:
        hyps.sort(key=lambda x: (-x[0], x[1]))
        out.append([h for _, _, h in hyps[:n_best]])
    return out


def decode(
    model: torch.nn.Module, src: torch.Tensor, src_lengths: torch.Tensor, opts: SearchOptions
) -> list[list[Hypothesis]]:
    """n-best hypotheses per sentence, best first: greedy for beam 1, else beam search.

    Runs where the model is: the sources are moved to the model's device, and the steps run
    under autocast for ``opts.precision`` (see :mod:`s2s.inference.device`).
    """
    device = model_device(model)
    src, src_lengths = src.to(device), src_lengths.to(device)
    with autocast(device, opts.precision):
        return _decode(model, src, src_lengths, opts)


def _decode(
    model: torch.nn.Module, src: torch.Tensor, src_lengths: torch.Tensor, opts: SearchOptions
) -> list[list[Hypothesis]]:
    if opts.beam_size == 1 and opts.n_best == 1 and opts.min_len == 0 and opts.no_repeat_ngram_size == 0:
        hyps = greedy_search(model, src, src_lengths, opts.max_len_a, opts.max_len_b, opts.return_attention)
        return [[h] for h in hyps]
    return beam_search(model, src, src_lengths, opts)

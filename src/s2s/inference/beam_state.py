"""What beam search carries from one step to the next, apart from the steps themselves
(:func:`s2s.inference.search.beam_search`): the sentences still searched (:class:`Sentences`), their
live beams with the decoder state that continues them (:class:`Beams`), the ranked extensions of a
step (:class:`Extensions`), the GNMT length penalty their scores are divided by, and how a decoder
state follows its beams (:func:`reorder`, copying only the fields that differ between beams).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass, replace
from typing import Any

import torch

from s2s.tokens import BOS_ID, EOS_ID


def length_penalty(length: int | torch.Tensor, alpha: float) -> float | torch.Tensor:
    """GNMT length penalty ((5 + len) / 6) ** alpha; ``len`` counts the tokens including EOS."""
    return ((5.0 + length) / 6.0) ** alpha


@dataclass
class Sentences:
    """Per-sentence tensors of the ``n`` sentences still searched, trimmed together by :meth:`select`."""

    ids: torch.Tensor  # (n,) index in the original batch
    limits: torch.Tensor  # (n,) output length limit a * src_len + b
    lp_limit: torch.Tensor | None  # (n,) length penalty at the limit (alpha >= 0: the best a live one reaches)
    fin_best: torch.Tensor  # (n, K) the K best finished scores (-inf: none yet)
    fin_count: torch.Tensor  # (n,) finished hypotheses so far

    @classmethod
    def start(cls, limits: torch.Tensor, alpha: float, beam: int) -> Sentences:
        batch, device = limits.size(0), limits.device
        return cls(
            ids=torch.arange(batch, device=device),
            limits=limits,
            lp_limit=length_penalty(limits.float(), alpha) if alpha >= 0 else None,
            fin_best=torch.full((batch, beam), float("-inf"), device=device),
            fin_count=torch.zeros(batch, dtype=torch.long, device=device),
        )

    def select(self, keep: torch.Tensor) -> Sentences:
        return Sentences(
            self.ids[keep],
            self.limits[keep],
            None if self.lp_limit is None else self.lp_limit[keep],
            self.fin_best[keep],
            self.fin_count[keep],
        )


@dataclass
class Beams:
    """The K live hypotheses of each sentence as ``n * K`` rows (sentence-major), with the decoder
    state that continues them; :meth:`advance` moves them all to the chosen extensions at once."""

    state: Any  # decoder state, n * K rows
    prev: torch.Tensor  # (n * K,) last token
    scores: torch.Tensor  # (n, K) total log-probability (-inf: not a hypothesis)
    history: torch.Tensor  # (n * K, t) tokens so far
    attn_history: torch.Tensor | None  # (n * K, t, S) attention so far (return_attention only)
    shared: set[str]  # state fields equal across each sentence's beams (only compacted, never reordered)

    @classmethod
    def start(cls, state: Any, batch: int, beam: int, shared: set[str], device: torch.device) -> Beams:
        scores = torch.full((batch, beam), float("-inf"), device=device)
        scores[:, 0] = 0.0  # only beam 0 is live at first: no duplicate hypotheses
        return cls(
            state=state,
            prev=torch.full((batch * beam,), BOS_ID, dtype=torch.long, device=device),  # step 0 ran already
            scores=scores,
            history=torch.zeros(batch * beam, 0, dtype=torch.long, device=device),
            attn_history=None,
            shared=shared,
        )

    def decode(self, model: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One decoder step for every live row: log-probabilities (n * K, V) and attention weights."""
        before = self.state
        log_probs, self.state, weights = model.decode_step(self.prev, self.state)
        self.shared = unchanged_fields(before, self.state, self.shared)
        return log_probs, weights

    def advance(
        self, keep: torch.Tensor, live: Extensions, weights: torch.Tensor | None, with_attention: bool
    ) -> Beams:
        """The beams of the ``keep`` sentences, continued by their live extensions ``live``."""
        beam = self.scores.size(1)
        live_beam, live_tok, live_scores = live.beam[keep], live.tok[keep], live.scores[keep]
        offsets = torch.arange(beam, device=keep.device)
        rows = (keep.unsqueeze(1) * beam + live_beam).view(-1)
        compact = None
        if keep.numel() < self.scores.size(0):
            compact = (keep.unsqueeze(1) * beam + offsets).view(-1)
        attn_history = self.attn_history
        if with_attention and weights is not None:
            cur = weights.index_select(0, rows).unsqueeze(1)
            attn_history = cur if attn_history is None else torch.cat([attn_history.index_select(0, rows), cur], 1)
        return Beams(
            state=reorder(self.state, rows, compact, self.shared),
            prev=live_tok.view(-1),
            scores=live_scores,
            history=torch.cat([self.history.index_select(0, rows), live_tok.view(-1, 1)], dim=1),
            attn_history=attn_history,
            shared=self.shared,
        )


@dataclass
class Extensions:
    """Extensions of each sentence's beams, ranked: (n, C) scores, source beam and token."""

    scores: torch.Tensor
    beam: torch.Tensor
    tok: torch.Tensor

    def live(self, beam: int) -> Extensions:
        """The K best extensions not ending in EOS: they stay live (there are always K of them)."""
        order = torch.sort((self.tok == EOS_ID).to(torch.uint8), dim=1, stable=True).indices[:, :beam]
        return Extensions(self.scores.gather(1, order), self.beam.gather(1, order), self.tok.gather(1, order))


def state_fields(state: Any) -> set[str]:
    return {f.name for f in fields(state)} if is_dataclass(state) else set()


def unchanged_fields(before: Any, after: Any, shared: set[str]) -> set[str]:
    """The shared fields that ``decode_step`` passed through as the very same tensors."""
    if not shared or type(before) is not type(after):
        return set()
    return {name for name in shared if getattr(after, name) is getattr(before, name)}


def reorder(state: Any, rows: torch.Tensor, compact: torch.Tensor | None, shared: set[str]) -> Any:
    """``state.index_select(rows)``, except that fields equal across beams are only compacted.

    Assumes, as ``DecoderState`` does, that ``decode_step`` never writes into state tensors in place.
    """
    if not shared:
        return state.index_select(rows)
    values = {}
    for f in fields(state):
        value = getattr(state, f.name)
        if value is None:
            values[f.name] = None
        elif f.name in shared:
            values[f.name] = value if compact is None else value.index_select(0, compact)
        else:
            values[f.name] = value.index_select(0, rows)
    return replace(state, **values)

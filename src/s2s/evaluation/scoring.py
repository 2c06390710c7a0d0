"""The evaluate stage's core: decode each test set, detokenize, score with sacreBLEU, report."""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from s2s.common.io import atomic_path
from s2s.data.encoded import EvalRecord
from s2s.data.preprocess.augment import tag_source
from s2s.data.preprocess.noise import NoiseConfig, noise_sentence
from s2s.data.preprocess.prepare import cap_pieces
from s2s.data.testsets import TestRecord
from s2s.data.vocab import Vocabulary
from s2s.evaluation.metrics import score_corpus, score_tokenized
from s2s.inference.batching import translate_ids
from s2s.inference.search import SearchOptions


def encode_sources(
    vocab: Vocabulary, records: Sequence[TestRecord | EvalRecord], tagged: bool, max_pieces: int | None = None
) -> list[list[int]]:
    """Source ids (tagged with the target language for a bidirectional model), cut to ``max_pieces``
    as preprocess cuts validation sources: one pathological line cannot stall the beam search."""
    texts = [tag_source(r.source, r.tgt_lang) if tagged else r.source for r in records]
    ids = vocab.encode(texts)
    return [cap_pieces(x, max_pieces)[0] for x in ids] if max_pieces else ids


def as_test_records(records: Sequence[EvalRecord]) -> list[TestRecord]:
    """Validation records (one reference) in the test-set shape."""
    return [TestRecord(r.src_lang, r.tgt_lang, r.source, (r.reference,)) for r in records]


def score_records(records: Sequence[TestRecord], hypotheses: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Scores per direction: BLEU/chrF against all references, plus the tokenized BLEU where every
    sentence has an official tokenized reference."""
    groups: dict[str, tuple[list[str], list[TestRecord]]] = {}
    for rec, hyp in zip(records, hypotheses, strict=True):
        h, r = groups.setdefault(rec.direction, ([], []))
        h.append(hyp)
        r.append(rec)
    out = {}
    for direction, (hyps, recs) in groups.items():
        n_refs = min(len(r.refs) for r in recs)
        streams = [[r.refs[k] for r in recs] for k in range(n_refs)]
        scores = score_corpus(hyps, *streams)
        if all(r.tok_refs for r in recs):
            scores.update(score_tokenized(hyps, [r.tok_refs[0] for r in recs], recs[0].tgt_lang))
        out[direction] = scores
    return out


def noise_level_config(level: float) -> NoiseConfig:
    """One knob for robustness curves: p_drop = p_blank = level, local shuffle of up to 10 * level positions."""
    return NoiseConfig(p_drop=level, p_blank=level, shuffle_k=round(10 * level))


def robustness_curve(
    model: torch.nn.Module,
    vocab: Vocabulary,
    records: Sequence[TestRecord],
    levels: Sequence[float],
    tagged: bool,
    seed: int,
    batch_size: int,
    max_pieces: int | None = None,
) -> list[dict[str, Any]]:
    """BLEU/chrF of greedy decoding with the test sources noised at each level (same seed for all)."""
    rows = []
    opts = SearchOptions(beam_size=1, n_best=1, min_len=0, length_penalty=0.0)
    n_refs = min((len(r.refs) for r in records), default=1)
    streams = [[r.refs[k] for r in records] for k in range(n_refs)]
    for level in levels:
        rng = random.Random(seed)
        noisy = [
            TestRecord(r.src_lang, r.tgt_lang, noise_sentence(r.source, noise_level_config(level), rng)[0], r.refs)
            for r in records
        ]
        hyps = translate_ids(model, encode_sources(vocab, noisy, tagged, max_pieces), opts, batch_size)
        scores = score_corpus(vocab.decode([h[0].tokens for h in hyps]), *streams)
        rows.append({"noise": level, "bleu": scores["bleu"], "chrf": scores["chrf"]})
    return rows


def write_translations(path: str | Path, records: Sequence[TestRecord], hyps: Sequence[str]) -> None:
    """direction, source, reference, hypothesis (and reference_2... for a set with several references)."""
    n_refs = max((len(r.refs) for r in records), default=1)
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(
            ["direction", "source", "reference", "hypothesis", *(f"reference_{k}" for k in range(2, n_refs + 1))]
        )
        for rec, hyp in zip(records, hyps, strict=True):
            writer.writerow([rec.direction, rec.source, rec.refs[0], hyp, *rec.refs[1:]])


def attention_heatmap(path: str | Path, src_pieces: list[str], out_pieces: list[str], weights: torch.Tensor) -> None:
    """Save a (output x source) attention heatmap as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(4, 0.4 * len(src_pieces) + 2), max(3, 0.35 * len(out_pieces) + 2)))
    ax.imshow(weights.numpy(), cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_pieces)), src_pieces, rotation=90, fontsize=8)
    ax.set_yticks(range(len(out_pieces)), out_pieces, fontsize=8)
    ax.set_xlabel("source pieces")
    ax.set_ylabel("output pieces")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)

"""Corpus BLEU and chrF with sacreBLEU, on detokenized text against raw references."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sacrebleu.metrics import BLEU, CHRF


def score_corpus(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, Any]:
    """Case-sensitive BLEU (13a tokenizer) and chrF, with sacreBLEU's signatures.

    Inputs must be detokenized text: scores on pieces or pre-tokenized text are not comparable
    with published figures.
    """
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hypotheses), [list(references)])
    c = chrf.corpus_score(list(hypotheses), [list(references)])
    return {
        "bleu": round(b.score, 2),
        "chrf": round(c.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "sentences": len(hypotheses),
    }

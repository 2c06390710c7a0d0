"""Corpus scores with sacreBLEU: the primary (detokenized, cased) and the literature-comparable one.

Primary: cased BLEU (13a tokenizer) and chrF on detokenized hypotheses against the raw references,
with sacreBLEU's signatures; several references per sentence are all used.

Comparable: the Multi30k literature reports lowercased, tokenized BLEU against the official
tokenized references (``data/task1/tok/*.lc.norm.tok.<lang>``), which the dataset's
``scripts/task1-tokenize.sh`` made with Moses: ``lowercase.perl | normalize-punctuation.perl -l
<lang> | tokenizer.perl -l <lang>`` (no ``-a``, default escaping).  Our hypotheses go through the
same steps with sacremoses (the maintained Python port of those Moses scripts), then sacreBLEU scores
them with ``tokenize='none'``: the signature says so, and :data:`TOKENIZED_METHOD` names the method.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sacrebleu.metrics import BLEU, CHRF

TOKENIZED_METHOD = (
    "lowercased; sacremoses MosesPunctNormalizer(lang).normalize; MosesTokenizer(lang).tokenize(escape=True) "
    "(as Multi30k's scripts/task1-tokenize.sh: lowercase.perl | normalize-punctuation.perl -l lang | "
    "tokenizer.perl -l lang); sacreBLEU tokenize=none against the official tok/ references"
)


def score_corpus(hypotheses: Sequence[str], *references: Sequence[str]) -> dict[str, Any]:
    """Case-sensitive BLEU (13a tokenizer) and chrF with sacreBLEU's signatures.

    ``references``: one or more reference streams, each aligned with ``hypotheses``.  Inputs must be
    detokenized text: scores on pieces or pre-tokenized text are not comparable with published figures.
    """
    if not references:
        raise ValueError("at least one reference stream is needed")
    for refs in references:
        if len(hypotheses) != len(refs):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(refs)} references")
    streams = [list(r) for r in references]
    bleu, chrf = BLEU(), CHRF()
    b = bleu.corpus_score(list(hypotheses), streams)
    c = chrf.corpus_score(list(hypotheses), streams)
    return {
        "bleu": round(b.score, 2),
        "chrf": round(c.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "sentences": len(hypotheses),
        "references": len(streams),
    }


@functools.lru_cache(maxsize=8)
def _moses(lang: str) -> tuple[Any, Any]:
    from sacremoses import MosesPunctNormalizer, MosesTokenizer

    return MosesPunctNormalizer(lang=lang), MosesTokenizer(lang=lang)


def moses_tokenize(lines: Sequence[str], lang: str) -> list[str]:
    """Lowercase, Moses punctuation normalisation, Moses tokenizer: the official Multi30k ``tok/`` recipe."""
    normalizer, tokenizer = _moses(lang)
    return [tokenizer.tokenize(normalizer.normalize(line.lower()), escape=True, return_str=True) for line in lines]


def score_tokenized(hypotheses: Sequence[str], tok_references: Sequence[str], lang: str) -> dict[str, Any]:
    """Lowercased tokenized BLEU of detokenized ``hypotheses`` against official tokenized references."""
    if len(hypotheses) != len(tok_references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(tok_references)} tokenized references")
    bleu = BLEU(tokenize="none", lowercase=True, force=True)  # tokenized input is intended here
    score = bleu.corpus_score(moses_tokenize(hypotheses, lang), [list(tok_references)])
    return {"bleu_tok": round(score.score, 2), "bleu_tok_signature": str(bleu.get_signature())}

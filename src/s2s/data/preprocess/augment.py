"""Reversed-pair augmentation for a single joint bidirectional model (Johnson et al., 2017 style).

One model translates both en->de and de->en; the only thing telling it which way to go is a
target-language tag such as ``<2de>`` at the start of the source. Adding every pair a second time
with the sides swapped doubles the training signal for free and keeps the two directions balanced.
The tags must be registered as SentencePiece ``user_defined_symbols`` so they stay single pieces.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Pair", "lang_tag", "tag_source", "make_pairs", "with_reversed"]


def lang_tag(lang: str) -> str:
    """The target-language tag, e.g. ``lang_tag("de") == "<2de>"``."""
    if not lang or any(c.isspace() for c in lang):
        # A tag containing whitespace would be split into several tokens and lose its meaning.
        raise ValueError(f"language code must be non-empty without whitespace, got {lang!r}")
    return f"<2{lang}>"


def tag_source(sentence: str, target_lang: str) -> str:
    """Prefix ``sentence`` with the tag of the language it should be translated *into*."""
    return f"{lang_tag(target_lang)} {sentence}"


@dataclass(frozen=True)
class Pair:
    """One training example; languages are kept so a mixed corpus can be split per direction."""

    src: str
    tgt: str
    src_lang: str
    tgt_lang: str

    @property
    def direction(self) -> str:
        return f"{self.src_lang}-{self.tgt_lang}"


def make_pairs(
    src_lines: Sequence[str], tgt_lines: Sequence[str], src_lang: str, tgt_lang: str, *, tagged: bool
) -> list[Pair]:
    """Zip aligned lines into pairs; ``tagged`` prefixes each source with the ``tgt_lang`` tag.

    Lines are used as given (strip newlines before calling). Mismatched lengths mean the corpus is
    misaligned, which would silently train on wrong pairs, so it is an error rather than a truncation.
    """
    src_lines, tgt_lines = list(src_lines), list(tgt_lines)
    if len(src_lines) != len(tgt_lines):
        raise ValueError(
            f"parallel corpus misaligned: {len(src_lines)} source vs {len(tgt_lines)} target lines"
        )
    return [
        Pair(tag_source(s, tgt_lang) if tagged else s, t, src_lang, tgt_lang)
        for s, t in zip(src_lines, tgt_lines)
    ]


def with_reversed(
    src_lines: Sequence[str], tgt_lines: Sequence[str], src_lang: str, tgt_lang: str
) -> list[Pair]:
    """Tagged forward pairs followed by the swapped pairs (target text as source, tagged with the
    source-language tag; source text, untagged, as target)."""
    src_lines, tgt_lines = list(src_lines), list(tgt_lines)
    forward = make_pairs(src_lines, tgt_lines, src_lang, tgt_lang, tagged=True)
    backward = make_pairs(tgt_lines, src_lines, tgt_lang, src_lang, tagged=True)
    return forward + backward

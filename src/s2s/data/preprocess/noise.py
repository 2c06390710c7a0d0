"""Source-side noise for denoising auto-encoding (Lample et al., 2018, "Unsupervised MT using
monolingual corpora only", section 2.3).

The model learns to reconstruct a clean sentence from a corrupted one, so corruption must be
cheap, reproducible and *bounded*: word dropout, word blanking and a local shuffle in which no
token travels more than ``k`` positions. Everything here is pure Python and generic over the token
type, so the same code corrupts whitespace words (``str``) and SentencePiece ids (``int``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import TypeVar

T = TypeVar("T")

__all__ = ["NoiseConfig", "NoiseStats", "noise_tokens", "noise_sentence", "noise_corpus"]


@dataclass(frozen=True)
class NoiseConfig:
    """Noise strengths. All zero (the default) means "no noise", so a config can be left in place
    and switched off without changing any output."""

    p_drop: float = 0.0
    p_blank: float = 0.0
    shuffle_k: float = 0.0
    blank_token: str = "<blank>"

    def __post_init__(self) -> None:
        # Fail at config time rather than silently producing a nonsense corpus hours later.
        for name in ("p_drop", "p_blank"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or math.isnan(value) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        k = self.shuffle_k
        if not isinstance(k, int | float) or math.isnan(k) or math.isinf(k) or k < 0:
            raise ValueError(f"shuffle_k must be a finite number >= 0, got {k!r}")
        if (
            not isinstance(self.blank_token, str)
            or not self.blank_token
            or any(c.isspace() for c in self.blank_token)
        ):
            # Must survive whitespace splitting as exactly one token.
            raise ValueError(
                f"blank_token must be a non-empty string without whitespace, got {self.blank_token!r}"
            )

    @property
    def is_identity(self) -> bool:
        """True when no operation can change a sentence (shuffle needs k >= 1 to move anything)."""
        return self.p_drop == 0 and self.p_blank == 0 and self.shuffle_k < 1


@dataclass
class NoiseStats:
    """Counters so a run can log how much corruption it actually applied (not just configured)."""

    sentences: int = 0
    tokens_in: int = 0
    dropped: int = 0
    blanked: int = 0
    moved: int = 0

    def add(self, other: NoiseStats) -> NoiseStats:
        """Accumulate ``other`` into ``self`` in place; returns ``self`` for chaining."""
        self.sentences += other.sentences
        self.tokens_in += other.tokens_in
        self.dropped += other.dropped
        self.blanked += other.blanked
        self.moved += other.moved
        return self

    @property
    def tokens_out(self) -> int:
        """Dropout is the only operation that changes length."""
        return self.tokens_in - self.dropped

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _local_shuffle(tokens: list[T], k: float, rng: random.Random) -> tuple[list[T], int]:
    """Lample's permutation: sort positions by ``i + U(0, K + 1)`` with ``K = floor(k)``.

    For ``j >= i + K + 1`` the key of ``j`` is ``>= j >= i + K + 1 >`` the key of ``i`` (ties keep
    index order because ``sorted`` is stable and float rounding is monotonic), so a token can only
    be overtaken by the next ``K`` tokens and only overtake the previous ``K``: it ends up at most
    ``K`` positions from where it started. Using ``floor(k)`` rather than ``k`` keeps that bound
    for fractional ``k``; ``k < 1`` therefore means no movement.
    """
    kk = math.floor(k)
    if kk < 1 or len(tokens) < 2:
        return tokens, 0
    alpha = kk + 1
    keys = [i + rng.random() * alpha for i in range(len(tokens))]
    order = sorted(range(len(tokens)), key=keys.__getitem__)
    moved = sum(1 for new_pos, old_pos in enumerate(order) if new_pos != old_pos)
    return [tokens[i] for i in order], moved


def noise_tokens(
    tokens: Sequence[T], cfg: NoiseConfig, rng: random.Random, blank: T | None = None
) -> tuple[list[T], NoiseStats]:
    """Corrupt one token sequence: word dropout, then blanking, then a local shuffle.

    ``blank`` is the replacement token (defaults to ``cfg.blank_token``; pass an id when working on
    subword ids). Operations with zero strength draw nothing from ``rng``, so an all-zero config is
    the exact identity and leaves the generator untouched. ``blanked`` counts replacements made,
    even if a token already equal to ``blank`` is replaced by itself.
    """
    out = list(tokens)
    stats = NoiseStats(sentences=1, tokens_in=len(out))
    if not out:
        return out, stats
    blank_tok: T = cfg.blank_token if blank is None else blank  # type: ignore[assignment]

    if cfg.p_drop > 0:
        kept = [tok for tok in out if rng.random() >= cfg.p_drop]
        if not kept:
            # An empty source gives the model nothing to denoise from: keep one random token.
            kept = [out[rng.randrange(len(out))]]
        stats.dropped = len(out) - len(kept)
        out = kept

    if cfg.p_blank > 0:
        for i in range(len(out)):
            if rng.random() < cfg.p_blank:
                out[i] = blank_tok
                stats.blanked += 1

    out, stats.moved = _local_shuffle(out, cfg.shuffle_k, rng)
    return out, stats


def noise_sentence(sentence: str, cfg: NoiseConfig, rng: random.Random) -> tuple[str, NoiseStats]:
    """Word-level noise on a whitespace-tokenised sentence; output is joined with single spaces."""
    out, stats = noise_tokens(sentence.split(), cfg, rng)
    return " ".join(out), stats


def noise_corpus(sentences: Iterable[str], cfg: NoiseConfig, seed: int) -> tuple[list[str], NoiseStats]:
    """Noise every sentence with a single ``random.Random(seed)`` so the corpus is reproducible:
    the same seed, config and input always give byte-identical output."""
    rng = random.Random(seed)
    total = NoiseStats()
    out: list[str] = []
    for sentence in sentences:
        noisy, stats = noise_sentence(sentence, cfg, rng)
        out.append(noisy)
        total.add(stats)
    return out, total

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s.data.preprocess.noise import NoiseConfig, NoiseStats, noise_corpus, noise_sentence, noise_tokens

FAST = settings(max_examples=60, deadline=None)

probs = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
ks = st.floats(min_value=0.0, max_value=6.0, allow_nan=False)
# Distinct tokens let us recover every token's original position.
unique_ints = st.lists(st.integers(0, 10_000), min_size=0, max_size=40, unique=True)


def _corpus(n: int = 200, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    words = [f"w{i}" for i in range(50)]
    return [" ".join(r.choice(words) for _ in range(r.randint(1, 15))) for _ in range(n)]


@pytest.mark.parametrize(
    "kwargs,field",
    [
        ({"p_drop": -0.1}, "p_drop"),
        ({"p_blank": 1.5}, "p_blank"),
        ({"shuffle_k": -1}, "shuffle_k"),
        ({"p_drop": float("nan")}, "p_drop"),
        ({"blank_token": "a b"}, "blank_token"),
    ],
)
def test_config_validation_names_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        NoiseConfig(**kwargs)


@FAST
@given(tokens=st.lists(st.integers()), seed=st.integers())
def test_zero_noise_is_identity_and_draws_nothing(tokens, seed):
    rng = random.Random(seed)
    state = rng.getstate()
    out, stats = noise_tokens(tokens, NoiseConfig(shuffle_k=0.9), rng, blank=-1)
    assert out == tokens
    assert out is not tokens
    assert rng.getstate() == state
    assert (stats.dropped, stats.blanked, stats.moved) == (0, 0, 0)


def test_zero_noise_corpus_identity():
    corpus = _corpus()
    out, stats = noise_corpus(corpus, NoiseConfig(), seed=3)
    assert out == corpus
    assert stats.sentences == len(corpus)


@FAST
@given(tokens=unique_ints, k=ks, seed=st.integers())
def test_shuffle_moves_no_token_more_than_floor_k(tokens, k, seed):
    out, stats = noise_tokens(tokens, NoiseConfig(shuffle_k=k), random.Random(seed), blank=-1)
    assert sorted(out) == sorted(tokens)
    pos = {t: i for i, t in enumerate(tokens)}
    displacement = [abs(pos[t] - j) for j, t in enumerate(out)]
    assert max(displacement, default=0) <= int(k)
    assert stats.moved == sum(d > 0 for d in displacement)
    if k < 1:
        assert out == tokens


def test_shuffle_actually_shuffles_and_reaches_bound():
    tokens = list(range(30))
    rng = random.Random(0)
    max_disp = 0
    for _ in range(200):
        out, stats = noise_tokens(tokens, NoiseConfig(shuffle_k=3), rng)
        max_disp = max(max_disp, max(abs(t - j) for j, t in enumerate(out)))
    assert max_disp == 3
    assert stats.moved > 0


@FAST
@given(tokens=st.lists(st.integers(), min_size=1, max_size=30), p=probs, seed=st.integers())
def test_dropout_never_empties(tokens, p, seed):
    out, stats = noise_tokens(tokens, NoiseConfig(p_drop=p), random.Random(seed))
    assert 1 <= len(out) <= len(tokens)
    assert stats.dropped == len(tokens) - len(out)
    # Dropout keeps order: the output is a subsequence of the input.
    it = iter(tokens)
    assert all(any(x == y for y in it) for x in out)


@FAST
@given(tokens=st.lists(st.integers(), min_size=1, max_size=30), seed=st.integers())
def test_full_dropout_keeps_exactly_one(tokens, seed):
    out, stats = noise_tokens(tokens, NoiseConfig(p_drop=1.0), random.Random(seed))
    assert len(out) == 1 and out[0] in tokens
    assert stats.dropped == len(tokens) - 1


def test_full_dropout_choice_uses_rng():
    tokens = list(range(20))
    kept = {noise_tokens(tokens, NoiseConfig(p_drop=1.0), random.Random(s))[0][0] for s in range(50)}
    assert len(kept) > 1


@FAST
@given(tokens=st.lists(st.integers(0, 100), max_size=30), p=probs, seed=st.integers())
def test_blank_count_matches_output(tokens, p, seed):
    out, stats = noise_tokens(tokens, NoiseConfig(p_blank=p, shuffle_k=2), random.Random(seed), blank=-1)
    assert out.count(-1) == stats.blanked
    assert len(out) == len(tokens)
    if p == 1.0:
        assert out == [-1] * len(tokens)


def test_blank_default_token_for_words():
    out, stats = noise_sentence("a b c d", NoiseConfig(p_blank=1.0), random.Random(0))
    assert out == "<blank> <blank> <blank> <blank>"
    assert stats.blanked == 4


def test_empty_sentences_stay_empty():
    cfg = NoiseConfig(p_drop=0.5, p_blank=0.5, shuffle_k=3)
    assert noise_sentence("", cfg, random.Random(0))[0] == ""
    assert noise_sentence("   ", cfg, random.Random(0))[0] == ""
    out, stats = noise_corpus(["", "a b", ""], cfg, seed=1)
    assert out[0] == "" and out[2] == "" and out[1] != ""
    assert stats.sentences == 3 and stats.tokens_in == 2


def test_sentence_whitespace_normalised():
    assert noise_sentence("  a \t b\n c ", NoiseConfig(), random.Random(0))[0] == "a b c"


NOISY = NoiseConfig(p_drop=0.1, p_blank=0.1, shuffle_k=3)


def test_same_seed_same_output_different_seed_differs():
    corpus = _corpus()
    a, sa = noise_corpus(corpus, NOISY, seed=7)
    b, sb = noise_corpus(corpus, NOISY, seed=7)
    c, _ = noise_corpus(corpus, NOISY, seed=8)
    assert a == b and sa == sb
    assert a != c
    assert a != corpus


def test_corpus_accepts_generator():
    corpus = _corpus(50)
    assert noise_corpus(iter(corpus), NOISY, seed=1)[0] == noise_corpus(corpus, NOISY, seed=1)[0]


def test_stats_add_up():
    corpus = _corpus()
    out, stats = noise_corpus(corpus, NOISY, seed=11)
    assert stats.sentences == len(corpus)
    assert stats.tokens_in == sum(len(s.split()) for s in corpus)
    assert stats.tokens_in - stats.dropped == sum(len(s.split()) for s in out) == stats.tokens_out
    assert stats.blanked == sum(s.split().count("<blank>") for s in out)
    assert stats.dropped > 0 and stats.blanked > 0 and stats.moved > 0


def test_stats_add_and_as_dict():
    a = NoiseStats(1, 10, 2, 3, 4)
    b = NoiseStats(2, 5, 1, 0, 1)
    assert a.add(b) is a
    assert a.as_dict() == {"sentences": 3, "tokens_in": 15, "dropped": 3, "blanked": 3, "moved": 5}


def _noise_source_side(pairs, cfg, seed):
    """Tiny helper mirroring how training uses noise: only the source side is corrupted."""
    srcs, stats = noise_corpus([s for s, _ in pairs], cfg, seed)
    return [(ns, t) for ns, (_, t) in zip(srcs, pairs)], stats


def test_target_never_changed_by_noise():
    srcs, tgts = _corpus(100, seed=1), _corpus(100, seed=2)
    pairs = list(zip(srcs, tgts))
    noised, _ = _noise_source_side(pairs, NoiseConfig(p_drop=0.3, p_blank=0.3, shuffle_k=3), seed=0)
    assert [t for _, t in noised] == tgts
    assert [s for s, _ in noised] != srcs

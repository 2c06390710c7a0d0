import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s2s.data.preprocess.augment import Pair, lang_tag, make_pairs, tag_source, with_reversed

FAST = settings(max_examples=50, deadline=None)
lines = st.lists(st.text(alphabet="abc xyz", max_size=12), max_size=10)


def test_tags():
    assert lang_tag("de") == "<2de>"
    assert tag_source("a house", "de") == "<2de> a house"
    with pytest.raises(ValueError):
        lang_tag("")
    with pytest.raises(ValueError):
        lang_tag("d e")


def test_pair_direction():
    assert Pair("a", "b", "en", "de").direction == "en-de"


def test_make_pairs_tagged_and_untagged():
    assert make_pairs(["a"], ["b"], "en", "de", tagged=False) == [Pair("a", "b", "en", "de")]
    assert make_pairs(["a"], ["b"], "en", "de", tagged=True) == [Pair("<2de> a", "b", "en", "de")]


@pytest.mark.parametrize("fn", [with_reversed, lambda *a: make_pairs(*a, tagged=True)])
def test_length_mismatch_raises(fn):
    with pytest.raises(ValueError):
        fn(["a", "b"], ["c"], "en", "de")


@FAST
@given(data=st.data())
def test_reversed_is_exactly_swapped(data):
    src = data.draw(lines)
    tgt = data.draw(st.lists(st.text(alphabet="def uvw", max_size=12), min_size=len(src), max_size=len(src)))
    pairs = with_reversed(src, tgt, "en", "de")
    n = len(src)
    assert len(pairs) == 2 * n
    fwd, bwd = pairs[:n], pairs[n:]
    assert fwd == [Pair(f"<2de> {s}", t, "en", "de") for s, t in zip(src, tgt)]
    assert bwd == [Pair(f"<2en> {t}", s, "de", "en") for s, t in zip(src, tgt)]
    assert {p.direction for p in fwd} <= {"en-de"} and {p.direction for p in bwd} <= {"de-en"}


def test_tags_survive_sentencepiece(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    r = random.Random(0)
    words = [
        "".join(r.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 7))) for _ in range(300)
    ]
    words += ["a", "house"]
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(
        "\n".join(" ".join(r.choice(words) for _ in range(r.randint(3, 12))) for _ in range(400))
    )
    prefix = tmp_path / "sp"
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(prefix),
        vocab_size=200,
        model_type="unigram",
        user_defined_symbols=["<2en>", "<2de>", "<blank>"],
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=f"{prefix}.model")
    pieces = sp.encode(tag_source("a house", "de"), out_type=str)
    assert "<2de>" in pieces
    assert "<2en>" in sp.encode(tag_source("a <blank> house", "en"), out_type=str)
    assert "<blank>" in sp.encode("a <blank> house", out_type=str)
    # Sanity: an unregistered tag is split into several pieces, so the check above is meaningful.
    assert "<2fr>" not in sp.encode("<2fr> a house", out_type=str)

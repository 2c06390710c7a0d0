"""Corpus scoring (s2s.evaluation.metrics, scoring.score_records) on examples small enough to check by hand."""

from __future__ import annotations

import math

import pytest

from s2s.data.testsets import TestRecord
from s2s.evaluation.metrics import score_corpus
from s2s.evaluation.scoring import score_records

REF = "the cat sat on a mat"


def test_bleu_of_one_sentence_by_hand() -> None:
    # "the cat sat on the mat" vs REF: clipped n-gram matches 5/6, 3/5, 2/4, 1/3; equal lengths (BP 1)
    expected = 100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25
    assert score_corpus(["the cat sat on the mat"], [REF])["bleu"] == round(expected, 2) == 53.73


def test_brevity_penalty_by_hand() -> None:
    # every n-gram of the 5-word hypothesis matches; BP = exp(1 - 6/5)
    assert score_corpus(["the cat sat on a"], [REF])["bleu"] == round(100 * math.exp(1 - 6 / 5), 2) == 81.87


def test_perfect_and_disjoint_output() -> None:
    perfect = score_corpus([REF, "a dog"], [REF, "a dog"])
    assert perfect["bleu"] == 100.0 and perfect["chrf"] == 100.0
    assert perfect["sentences"] == 2 and perfect["references"] == 1
    assert score_corpus(["xyz qrs uvw"], [REF])["bleu"] == 0.0


def test_the_best_of_several_references_counts() -> None:
    # against the second reference the hypothesis is perfect
    assert score_corpus(["a dog runs in the park"], ["the cat sleeps"], ["a dog runs in the park"])["bleu"] == 100.0


def test_misaligned_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        score_corpus(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one reference"):
        score_corpus(["a"])


def test_score_records_groups_by_direction_and_uses_the_common_reference_count() -> None:
    records = [
        TestRecord("en", "de", "s1", ("ein kleiner hund rennt schnell", "der kleine hund rennt schnell")),
        TestRecord("en", "de", "s2", ("eine katze schläft auf dem sofa",)),  # one reference: only stream 1 counts
        TestRecord("de", "en", "s3", (REF,)),
    ]
    hyps = ["der kleine hund rennt schnell", "eine katze schläft auf dem sofa"]
    scores = score_records(records, [*hyps, "the cat sat on the mat"])
    assert sorted(scores) == ["de-en", "en-de"]
    # with the second reference of s1 the score would be 100; the first stream alone is not
    assert scores["en-de"]["references"] == 1
    first_stream = ["ein kleiner hund rennt schnell", "eine katze schläft auf dem sofa"]
    assert scores["en-de"]["bleu"] == score_corpus(hyps, first_stream)["bleu"] < 100
    assert scores["de-en"]["bleu"] == 53.73 and scores["de-en"]["sentences"] == 1
    assert "bleu_tok" not in scores["de-en"]  # no official tokenized references given


def test_tokenized_bleu_only_where_every_sentence_has_a_tokenized_reference() -> None:
    dog = "a dog runs in the park"
    both = [TestRecord("de", "en", "s", (REF,), (REF,)), TestRecord("de", "en", "t", (dog,), (dog,))]
    scores = score_records(both, ["The cat sat on a mat", "A dog runs in the park"])["de-en"]
    assert scores["bleu_tok"] == 100.0  # lowercased and tokenized, the hypotheses equal the references
    assert scores["bleu"] < 100  # the cased primary score sees the capitals
    mixed = [both[0], TestRecord("de", "en", "t", (dog,))]
    assert "bleu_tok" not in score_records(mixed, ["The cat sat on a mat", "A dog runs in the park"])["de-en"]

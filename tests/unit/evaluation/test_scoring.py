"""s2s.evaluation.scoring: scores per direction of test records (every common reference, tokenized BLEU
where the official tokenized references exist)."""

from __future__ import annotations

from s2s.data.testsets import TestRecord
from s2s.evaluation.metrics import score_corpus
from s2s.evaluation.scoring import score_records

REF = "the cat sat on a mat"
HYPS = ["the cat sat on the mat .", "a dog runs in the park", "two men play football"]
REF_A = ["the cat sat on a mat .", "a dog is running in a park", "two men are playing soccer"]
REF_B = ["a cat is sitting on the mat .", "the dog runs through the park", "two men play football"]


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


def test_score_records_per_direction_with_all_references():
    records = [TestRecord("en", "de", f"s{i}", (a, b)) for i, (a, b) in enumerate(zip(REF_A, REF_B, strict=True))]
    records.append(TestRecord("de", "en", "x", ("the cat sat on the mat .",)))
    scores = score_records(records, [*HYPS, "the cat sat on the mat ."])
    assert scores["en-de"]["bleu"] == score_corpus(HYPS, REF_A, REF_B)["bleu"]
    assert scores["de-en"]["references"] == 1 and "bleu_tok" not in scores["de-en"]

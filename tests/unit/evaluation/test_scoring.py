"""s2s.evaluation.scoring: scores per direction of test records (every common reference, tokenized BLEU
where the official tokenized references exist), the sources the model reads, the robustness curve, the
translations file and the attention heatmaps."""

from __future__ import annotations

import csv
import struct
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from s2s.data.encoded import EvalRecord
from s2s.data.testsets import TestRecord
from s2s.data.vocab import Vocabulary
from s2s.evaluation import scoring
from s2s.evaluation.metrics import score_corpus
from s2s.evaluation.scoring import (
    as_test_records,
    attention_heatmap,
    encode_sources,
    noise_level_config,
    robustness_curve,
    score_records,
    write_translations,
)
from s2s.inference.search import SearchOptions

from helpers.tiny_models import tagged_vocabulary

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


# --- the sources the model reads ------------------------------------------------------------------


@pytest.fixture(scope="module")
def vocab(tmp_path_factory: pytest.TempPathFactory) -> Vocabulary:
    return tagged_vocabulary(tmp_path_factory.mktemp("spm"))


def test_sources_are_tagged_with_their_target_language_and_capped_after_the_tag(vocab: Vocabulary) -> None:
    records = [
        TestRecord("en", "de", "a dog runs in the park", ("ein Hund rennt im Park",)),
        EvalRecord("de", "en", "zwei Katzen schlafen", "two cats sleep"),  # validation records are read alike
    ]
    plain = encode_sources(vocab, records, tagged=False)
    assert plain == vocab.encode([r.source for r in records])
    tagged = encode_sources(vocab, records, tagged=True)
    assert [ids[0] for ids in tagged] == [vocab.piece_to_id("<2de>"), vocab.piece_to_id("<2en>")]
    assert [ids[1:] for ids in tagged] == plain
    assert all(len(ids) > 3 for ids in tagged)  # else the cap below cuts nothing
    assert encode_sources(vocab, records, tagged=True, max_pieces=3) == [ids[:3] for ids in tagged]


def test_validation_records_become_test_records_with_one_reference() -> None:
    records = [EvalRecord("en", "pt-BR", "a dog", "um cão"), EvalRecord("pt-BR", "en", "dois gatos", "two cats")]
    assert as_test_records(records) == [
        TestRecord("en", "pt-BR", "a dog", ("um cão",)),
        TestRecord("pt-BR", "en", "dois gatos", ("two cats",)),
    ]


# --- robustness curve -----------------------------------------------------------------------------


@pytest.mark.parametrize(("level", "shuffle_k"), [(0.0, 0), (0.1, 1), (0.3, 3), (1.0, 10)])
def test_one_noise_knob_sets_drop_blank_and_shuffle(level: float, shuffle_k: int) -> None:
    config = noise_level_config(level)
    assert (config.p_drop, config.p_blank, config.shuffle_k) == (level, level, shuffle_k)


CLEAN = ["a dog runs in the park", "two cats sleep in the park", "a dog sleeps", "two dogs run", "the cats run"] * 4


def test_robustness_curve_scores_noised_sources_per_level(vocab: Vocabulary, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a model that copies its source (and references equal to the sources), the clean level
    scores 100 and a noised one less; the noise is seeded, and decoding is greedy."""
    seen: list[tuple[SearchOptions, list[list[int]]]] = []

    def copy_source(model: object, src_ids: list[list[int]], opts: SearchOptions, batch_size: int) -> list:
        seen.append((opts, src_ids))
        return [[SimpleNamespace(tokens=list(ids))] for ids in src_ids]

    monkeypatch.setattr(scoring, "translate_ids", copy_source)
    records = [TestRecord("en", "de", s, (s,)) for s in CLEAN]
    rows = robustness_curve(None, vocab, records, [0.0, 0.3], tagged=False, seed=5, batch_size=4)
    assert [row["noise"] for row in rows] == [0.0, 0.3]
    assert rows[0]["bleu"] == rows[0]["chrf"] == 100.0
    assert rows[1]["bleu"] < 100.0 and rows[1]["chrf"] < 100.0
    assert all(opts.beam_size == 1 and opts.n_best == 1 for opts, _ in seen)
    assert seen[0][1] == vocab.encode(CLEAN)
    assert robustness_curve(None, vocab, records, [0.0, 0.3], tagged=False, seed=5, batch_size=4) == rows
    capped = robustness_curve(None, vocab, records, [0.0], tagged=True, seed=5, batch_size=4, max_pieces=3)
    assert all(len(ids) <= 3 and ids[0] == vocab.piece_to_id("<2de>") for ids in seen[-1][1])
    assert capped[0]["bleu"] < 100.0  # the cut sources (a tag and two pieces) are not the references


# --- files ----------------------------------------------------------------------------------------


def test_translations_are_one_row_per_sentence_with_a_column_per_reference(tmp_path: Path) -> None:
    records = [
        TestRecord("en", "de", 'a "big" dog', ("ein großer Hund", "der große Hund")),
        TestRecord("en", "fr", "two\tcats", ("deux chats", "les deux chats")),
    ]
    path = tmp_path / "translations.tsv"
    write_translations(path, records, ["ein Hund", "deux chat"])
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    assert rows == [
        ["direction", "source", "reference", "hypothesis", "reference_2"],
        ["en-de", 'a "big" dog', "ein großer Hund", "ein Hund", "der große Hund"],
        ["en-fr", "two\tcats", "deux chats", "deux chat", "les deux chats"],
    ]


def test_translations_not_matching_the_records_write_nothing(tmp_path: Path) -> None:
    records = [TestRecord("en", "de", "a dog", ("ein Hund",)), TestRecord("en", "de", "two cats", ("zwei Katzen",))]
    with pytest.raises(ValueError):
        write_translations(tmp_path / "translations.tsv", records, ["ein Hund"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("n_src", "n_out", "size"), [(10, 20, (600, 900)), (2, 1, (400, 300))])
def test_attention_heatmap_is_a_png_sized_by_its_pieces(tmp_path: Path, n_src: int, n_out: int, size: tuple) -> None:
    weights = torch.softmax(torch.randn(n_out, n_src, generator=torch.Generator().manual_seed(0)), dim=-1)
    path = tmp_path / "heatmap.png"
    attention_heatmap(path, [f"▁s{i}" for i in range(n_src)], [f"▁o{i}" for i in range(n_out)], weights)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == size  # width, height of the IHDR chunk
    assert [p.name for p in tmp_path.iterdir()] == ["heatmap.png"]  # no temporary file left

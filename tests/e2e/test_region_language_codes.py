"""Language codes with a region (``pt-BR``): the languages stay fields from preprocess to
evaluation, so the tag evaluation puts before a source is the one training used (a direction
string ``en-pt-BR`` split at "-" gave ``<2pt>``)."""

import json
import random
from pathlib import Path

from s2s.data.dataset import ParallelData
from s2s.data.encoded import read_eval_records
from s2s.data.preprocess.augment import lang_tag
from s2s.data.testsets import read_test_records
from s2s.data.vocab import Vocabulary
from s2s.evaluation.scoring import as_test_records, encode_sources, score_records
from s2s.inference.translator import check_target_lang

from conftest import run_script, tiny_paths

LANGS = ("en", "pt-BR")


def _corpus(folder: Path) -> None:
    rng = random.Random(5)
    words = {
        lang: ["".join(rng.choice(letters) for _ in range(rng.randint(3, 8))) for _ in range(40)]
        for lang, letters in zip(LANGS, ("abcdefghijklmnopqrstuvwxyz", "abcdefghilmnopqrstuvzãçéõ"), strict=True)
    }
    for split, n in (("train", 200), ("valid", 20), ("test", 20)):
        rows = [[rng.randrange(40) for _ in range(rng.randint(3, 8))] for _ in range(n)]
        for lang in LANGS:
            text = "\n".join(" ".join(words[lang][i] for i in row) for row in rows) + "\n"
            (folder / f"{split}.{lang}").write_text(text, encoding="utf-8")


def test_region_code_tags_are_the_same_in_training_and_evaluation(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    _corpus(corpus)
    conf = tmp_path / "conf" / "data"
    conf.mkdir(parents=True)
    (conf / "en_ptbr.yaml").write_text(
        f"name: en_ptbr\nsrc_lang: en\ntgt_lang: pt-BR\nsources:\n  mine: {{path: {corpus}}}\n"
        "train: {pairs: mine/train}\nvalid: {pairs: mine/valid}\ntest_sets:\n  test: {pairs: mine/test}\n"
        "primary_test: test\n",
        encoding="utf-8",
    )
    overrides = [
        *tiny_paths(tmp_path),
        f"hydra.searchpath=[file://{tmp_path / 'conf'}]",
        "data=en_ptbr",
        "preprocess.reverse=true",
        "preprocess.spm.vocab_size=100",
    ]
    run_script("download", *overrides)
    run_script("preprocess", *overrides)
    prepared = tmp_path / "prepared"
    vocab = Vocabulary(prepared / "spm.model")
    tag_ids = {lang: vocab.piece_to_id(lang_tag(lang)) for lang in LANGS}
    assert all(vocab.id_to_piece(i) == lang_tag(lang) for lang, i in tag_ids.items()), tag_ids

    train = ParallelData.load(prepared / "train.npz")
    trained_tags = {int(train[i][1][0]) for i in range(len(train))}
    assert trained_tags == set(tag_ids.values())

    # what the evaluate stage encodes (test sets, and the validation set with evaluate.split=valid)
    test = read_test_records(prepared / "testsets" / "test.jsonl")
    valid = as_test_records(read_eval_records(prepared / "valid.tsv"))
    for records in (test, valid):
        ids = encode_sources(vocab, records, tagged=True)
        expected = [tag_ids[r.tgt_lang] for r in records]
        assert [x[0] for x in ids] == expected
        assert {r.direction for r in records} == {"en-pt-BR", "pt-BR-en"}
        assert set(score_records(records, [r.refs[0] for r in records])) == {"en-pt-BR", "pt-BR-en"}
    # what validation during training decodes: valid.npz, encoded by preprocess
    valid_ids = ParallelData.load(prepared / "valid.npz")
    assert [int(valid_ids[i][1][0]) for i in range(len(valid_ids))] == [tag_ids[r.tgt_lang] for r in valid]
    check_target_lang(vocab, "pt-BR")  # translate accepts the code the model was trained with
    stats = json.loads((tmp_path / "reports" / "preprocess.json").read_text())
    assert stats["dataset"]["src_lang"] == "en" and stats["dataset"]["tgt_lang"] == "pt-BR"

"""The preprocess core on a tiny generated corpus: outputs, filtering, determinism, augmentation, caps."""

import gzip
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from s2s.common.io import InputError
from s2s.data.dataset import ParallelData
from s2s.data.download.sources import CorpusConfig
from s2s.data.encoded import read_eval_records
from s2s.data.preprocess.noise import NoiseConfig
from s2s.data.preprocess.prepare import PrepareOptions, prepare
from s2s.data.testsets import read_test_records
from s2s.data.vocab import Vocabulary
from s2s.tokens import UNK_ID

SRC = "local"  # the source folder under the raw folder, as the download stage lays it out
N_TRAIN, N_EVAL = 300, 20
MAX_WORDS = 20
EMPTY_AT = (17, 150)  # planted empty pairs (one empty source, one blank target)
LONG_AT = (42, 260)  # planted over-long pairs (one long source, one long target)
NOISE = NoiseConfig(p_drop=0.1, p_blank=0.1, shuffle_k=3)


def _vocab(rng: random.Random, letters: str) -> list[str]:
    words: set[str] = set()
    while len(words) < 60:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 8))))
    return sorted(words)


def _sentence(rng, words, lo=3, hi=12):
    return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))


def _write(path: Path, lines):
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory) -> Path:
    rng = random.Random(7)
    en_words = _vocab(rng, "abcdefghijklmnopqrstuvwxyz")
    de_words = _vocab(rng, "abcdefghiklmnorstuwzäöüß")
    raw = tmp_path_factory.mktemp("raw")
    (raw / SRC).mkdir()
    for split, n in (("train", N_TRAIN), ("val", N_EVAL), ("test_2016_flickr", N_EVAL)):
        en = [_sentence(rng, en_words) for _ in range(n)]
        de = [_sentence(rng, de_words) for _ in range(n)]
        if split == "train":
            en[EMPTY_AT[0]] = ""
            de[EMPTY_AT[1]] = "   "
            en[LONG_AT[0]] = _sentence(rng, en_words, MAX_WORDS + 5, MAX_WORDS + 10)
            de[LONG_AT[1]] = _sentence(rng, de_words, MAX_WORDS + 5, MAX_WORDS + 10)
        _write(raw / SRC / f"{split}.en.gz", en)
        _write(raw / SRC / f"{split}.de.gz", de)
    return raw


def dataset(raw_dir: Path, **extra) -> CorpusConfig:
    cfg = {
        "name": "t",
        "src_lang": "en",
        "tgt_lang": "de",
        "sources": {SRC: {"path": str(raw_dir / SRC)}},
        "train": {"pairs": f"{SRC}/train"},
        "valid": {"pairs": f"{SRC}/val"},
        "test_sets": {"test_2016_flickr": {"pairs": f"{SRC}/test_2016_flickr"}},
    }
    cfg.update(extra)
    return CorpusConfig.from_config(cfg)


def _opts(raw_dir: Path, out_dir: Path, **kw) -> PrepareOptions:
    base = dict(
        raw_dir=str(raw_dir),
        out_dir=str(out_dir),
        dataset=dataset(raw_dir),
        vocab_size=100,
        max_words=MAX_WORDS,
        max_pieces=1000,
        seed=1234,
    )
    base.update(kw)
    return PrepareOptions(**base)


def _clean_pairs() -> int:
    return N_TRAIN - len(EMPTY_AT) - len(LONG_AT)


def _seqs(data: ParallelData, side: str) -> list[list[int]]:
    return [item[1 if side == "src" else 2].tolist() for item in (data[i] for i in range(len(data)))]


@pytest.fixture(scope="module")
def plain(raw_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("plain") / "prepared"
    return out, prepare(_opts(raw_dir, out))


def test_outputs_and_stats(plain):
    out, stats = plain
    assert sorted(os.listdir(out)) == sorted(
        ["spm.model", "spm.vocab", "train.npz", "valid.npz", "test.npz", "valid.tsv", "testsets"]
    )
    assert sorted(os.listdir(out.parent)) == ["prepared"]  # no temp folder left behind
    tr = stats["train"]
    assert tr["pairs_in"] == N_TRAIN
    assert tr["filtered"] == {"empty": 2, "too_long_words": 2, "too_long_pieces": 0}
    assert tr["pairs_out"] == _clean_pairs()
    assert stats["valid"] == {"pairs": N_EVAL, "truncated_sources": 0}
    assert stats["test"] == {"pairs": N_EVAL, "name": "test_2016_flickr"}
    assert stats["warnings"] == []
    assert stats["vocab_size"] == 100
    assert len(ParallelData.load(out / "train.npz")) == _clean_pairs()
    assert len(ParallelData.load(out / "valid.npz")) == N_EVAL


def test_encoded_training_pairs_match_raw_text(plain, raw_dir):
    out, _ = plain
    vocab = Vocabulary(out / "spm.model")
    en = gzip.decompress((raw_dir / SRC / "train.en.gz").read_bytes()).decode().splitlines()
    de = gzip.decompress((raw_dir / SRC / "train.de.gz").read_bytes()).decode().splitlines()
    dropped = set(EMPTY_AT) | set(LONG_AT)
    kept = [i for i in range(N_TRAIN) if i not in dropped]
    data = ParallelData.load(out / "train.npz")
    assert vocab.decode(_seqs(data, "src")) == [en[i] for i in kept]
    assert vocab.decode(_seqs(data, "tgt")) == [de[i] for i in kept]


def test_eval_records(plain, raw_dir):
    out, _ = plain
    records = read_eval_records(out / "valid.tsv")
    en = gzip.decompress((raw_dir / SRC / "val.en.gz").read_bytes()).decode().splitlines()
    de = gzip.decompress((raw_dir / SRC / "val.de.gz").read_bytes()).decode().splitlines()
    got = [(r.direction, r.source, r.reference) for r in records]
    assert got == [("en-de", s, t) for s, t in zip(en, de)]


def test_limits_and_piece_filter(raw_dir, tmp_path):
    out = tmp_path / "prepared"
    stats = prepare(_opts(raw_dir, out, max_train_pairs=100, max_eval_pairs=5, max_pieces=25))
    vocab = Vocabulary(out / "spm.model")
    assert stats["train"]["pairs_in"] == 100
    assert stats["train"]["filtered"]["empty"] == 1 and stats["train"]["filtered"]["too_long_words"] == 1
    too_long = stats["train"]["filtered"]["too_long_pieces"]
    assert too_long > 0
    assert stats["train"]["pairs_out"] == 98 - too_long
    data = ParallelData.load(out / "train.npz")
    assert max(data.src_lengths().max(), data.tgt_lengths().max()) <= 25
    assert len(vocab) == 100
    assert stats["valid"]["pairs"] == 5 and len(read_test_records(out / "testsets/test_2016_flickr.jsonl")) == 5


def test_same_seed_is_byte_identical_and_seed_matters(raw_dir, tmp_path):
    outs = {}
    for name, seed in (("a", 11), ("b", 11), ("c", 12)):
        outs[name] = tmp_path / name
        prepare(_opts(raw_dir, outs[name], seed=seed, noise_copies=1, noise=NOISE))
    files = sorted(p.relative_to(outs["a"]) for p in outs["a"].rglob("*") if p.is_file())
    assert len(files) == 7  # no temporary id files left behind
    for f in files:
        assert (outs["a"] / f).read_bytes() == (outs["b"] / f).read_bytes(), f
    assert (outs["a"] / "train.npz").read_bytes() != (outs["c"] / "train.npz").read_bytes()


def test_reverse(raw_dir, tmp_path):
    out = tmp_path / "prepared"
    stats = prepare(_opts(raw_dir, out, reverse=True))
    vocab = Vocabulary(out / "spm.model")
    n = _clean_pairs()
    assert stats["train"]["pairs_out"] == 2 * n
    assert set(stats["user_defined_symbols"]) >= {"<2de>", "<2en>"}
    tag = {}
    for lang in ("de", "en"):
        tag[lang] = vocab.piece_to_id(f"<2{lang}>")
        assert tag[lang] != UNK_ID
        assert vocab.id_to_piece(tag[lang]) == f"<2{lang}>"
        assert [p for p in vocab.pieces(f"<2{lang}>") if p != "▁"] == [f"<2{lang}>"]
    data = ParallelData.load(out / "train.npz")
    src, tgt = _seqs(data, "src"), _seqs(data, "tgt")
    assert [s[0] for s in src] == [tag["de"]] * n + [tag["en"]] * n
    assert all(tag["de"] not in s[1:] and tag["en"] not in s[1:] for s in src)
    # the reversed half swaps the sides
    assert [s[1:] for s in src[n:]] == tgt[:n]
    assert tgt[n:] == [s[1:] for s in src[:n]]

    records = read_eval_records(out / "valid.tsv")
    assert [r.direction for r in records] == ["en-de"] * N_EVAL + ["de-en"] * N_EVAL
    assert [(r.source, r.reference) for r in records[N_EVAL:]] == [(r.reference, r.source) for r in records[:N_EVAL]]
    assert not any(r.source.startswith("<2") for r in records)
    valid = ParallelData.load(out / "valid.npz")
    assert len(valid) == 2 * N_EVAL
    assert all(valid[i][1][0].item() == (tag["de"] if i < N_EVAL else tag["en"]) for i in range(len(valid)))


def _check_noisy_copies(out, stats, copies, n):
    assert stats["train"]["pairs_out"] == (copies + 1) * n
    data = ParallelData.load(out / "train.npz")
    src, tgt = _seqs(data, "src"), _seqs(data, "tgt")
    for c in range(1, copies + 1):
        assert tgt[c * n : (c + 1) * n] == tgt[:n]
    changed = sum(src[c * n + i] != src[i] for c in range(1, copies + 1) for i in range(n))
    assert changed > copies * n // 2  # most noisy sources differ from the clean ones
    noise = stats["train"]["noise"]
    assert noise["sentences"] == copies * n
    assert noise["dropped"] > 0 and noise["blanked"] > 0 and noise["moved"] > 0
    blank = Vocabulary(out / "spm.model").piece_to_id("<blank>")
    assert blank != UNK_ID
    assert any(blank in s for s in src[n:]) and not any(blank in s for s in src[:n])
    return src


def test_word_noise_copies(raw_dir, tmp_path):
    out = tmp_path / "prepared"
    stats = prepare(_opts(raw_dir, out, noise_copies=2, noise_level="word", noise=NOISE))
    _check_noisy_copies(out, stats, 2, _clean_pairs())


def test_subword_noise_copies(raw_dir, tmp_path):
    out = tmp_path / "prepared"
    stats = prepare(_opts(raw_dir, out, noise_copies=2, noise_level="subword", noise=NOISE))
    n = _clean_pairs()
    _check_noisy_copies(out, stats, 2, n)
    assert stats["train"]["noise"]["tokens_in"] == 2 * sum(
        len(s) for s in _seqs(ParallelData.load(out / "train.npz"), "src")[:n]
    )


@pytest.mark.parametrize("level", ["word", "subword"])
def test_noise_with_reverse_keeps_the_tag_first(raw_dir, tmp_path, level):
    out = tmp_path / "prepared"
    stats = prepare(_opts(raw_dir, out, reverse=True, noise_copies=1, noise_level=level, noise=NOISE))
    vocab = Vocabulary(out / "spm.model")
    n = 2 * _clean_pairs()
    src = _check_noisy_copies(out, stats, 1, n)
    tags = {vocab.piece_to_id("<2de>"), vocab.piece_to_id("<2en>")}
    assert all(s[0] in tags and not tags & set(s[1:]) for s in src)
    assert [s[0] for s in src[n:]] == [s[0] for s in src[:n]]


def test_noise_replace_clean(raw_dir, tmp_path):
    out = tmp_path / "prepared"
    stats = prepare(_opts(raw_dir, out, noise_copies=1, noise=NOISE, noise_replace_clean=True))
    assert stats["train"]["pairs_out"] == _clean_pairs()


def test_vocab_size_too_large(raw_dir, tmp_path):
    out = tmp_path / "work" / "prepared"
    with pytest.raises(InputError) as info:
        prepare(_opts(raw_dir, out, vocab_size=50000))
    msg = str(info.value)
    assert "preprocess.spm.vocab_size" in msg and "50000" in msg
    assert not out.exists()
    assert os.listdir(out.parent) == []  # no temp folder left behind


@pytest.mark.parametrize(
    "kw,option",
    [({"noise_level": "char"}, "preprocess.noise.level"), ({"noise_copies": -1}, "preprocess.noise.copies")],
)
def test_bad_noise_options(raw_dir, tmp_path, kw, option):
    with pytest.raises(InputError, match=option):
        prepare(_opts(raw_dir, tmp_path / "prepared", **kw))
    assert not (tmp_path / "prepared").exists()


def test_valid_sides_with_different_line_counts(raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    _write(raw / SRC / "val.de.gz", [f"zeile {i}" for i in range(N_EVAL + 3)])
    out = tmp_path / "prepared"
    with pytest.raises(InputError) as info:
        prepare(_opts(raw, out))
    msg = str(info.value)
    assert f"has {N_EVAL} lines" in msg and f"has {N_EVAL + 3}" in msg
    assert "val.en.gz" in msg and "val.de.gz" in msg
    assert not out.exists()


def test_missing_raw_file(raw_dir, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    (raw / SRC / "test_2016_flickr.de.gz").unlink()
    with pytest.raises(
        InputError, match=r"data.test_sets.test_2016_flickr: source 'local' has no file test_2016_flickr\.de"
    ):
        prepare(_opts(raw, tmp_path / "prepared"))
    assert not (tmp_path / "prepared").exists()


def test_npz_arrays_are_int32(plain):
    out, _ = plain
    with np.load(out / "train.npz") as z:
        assert z["src"].dtype == np.int32 and z["tgt"].dtype == np.int32


def test_a_very_long_validation_line_is_capped_and_reported(raw_dir, tmp_path):
    """One 100,000-character validation line must not reach training's validation or evaluate whole."""
    raw = tmp_path / "raw"
    shutil.copytree(raw_dir, raw)
    en = gzip.decompress((raw / SRC / "val.en.gz").read_bytes()).decode().splitlines()
    en[3] = ("abc defg " * 12000)[:100_000]
    _write(raw / SRC / "val.en.gz", en)
    out = tmp_path / "prepared"
    stats = prepare(_opts(raw, out, max_eval_pieces=150))
    valid = ParallelData.load(out / "valid.npz")
    assert len(valid) == N_EVAL and int(valid.src_lengths().max()) == 150
    assert stats["valid"]["truncated_sources"] == 1
    assert stats["warnings"] == [
        "1 validation source(s) longer than 150 pieces truncated (preprocess.filter.max_eval_pieces)"
    ]
    # the raw text is kept for scoring; evaluate applies the same cap when it encodes it
    assert read_eval_records(out / "valid.tsv")[3].source == en[3]


def test_spm_sample_is_bounded_and_seeded(raw_dir, tmp_path):
    """SentencePiece sees at most input_sentence_size sentences, a seeded sample: same seed, same model."""
    a, b, full = tmp_path / "a", tmp_path / "b", tmp_path / "full"
    for out in (a, b):
        prepare(_opts(raw_dir, out, input_sentence_size=200, vocab_size=60))
    prepare(_opts(raw_dir, full, input_sentence_size=0, vocab_size=60))
    assert (a / "spm.model").read_bytes() == (b / "spm.model").read_bytes()
    assert (a / "spm.model").read_bytes() != (full / "spm.model").read_bytes()


@pytest.mark.parametrize(
    "kw,option",
    [({"max_eval_pieces": 0}, "preprocess.filter.max_eval_pieces"),
     ({"input_sentence_size": -1}, "preprocess.spm.input_sentence_size")],
)
def test_bad_cap_options(raw_dir, tmp_path, kw, option):
    with pytest.raises(InputError, match=option):
        prepare(_opts(raw_dir, tmp_path / "prepared", **kw))


def test_a_params_file_changed_while_preprocessing_publishes_nothing(raw_dir, tmp_path, monkeypatch):
    """Issue 35, item 5: a second `dvc exp run` rewrote params.yaml (vocab_size 400 -> 500) under this stage."""
    from s2s.common import config_guard

    params = tmp_path / "params.yaml"
    params.write_text("preprocess: {spm: {vocab_size: 500}}\n")
    monkeypatch.setattr(config_guard, "_started_with", (params, "0" * 64))  # what it held at the start
    out = tmp_path / "prepared"
    with pytest.raises(InputError, match="params.yaml changed while this stage ran"):
        prepare(_opts(raw_dir, out))
    assert not out.exists()

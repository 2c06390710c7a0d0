"""Data configs: each source kind (pairs, TSV, several references; URL, local folder, local file),
mirror lookup for several sources, and one clear error for each kind of wrong config."""

import gzip
import hashlib
from pathlib import Path

import pytest

from s2s.common.io import InputError
from s2s.data.download.corpus import MIRROR_ENV, download_dataset
from s2s.data.download.sources import CorpusConfig, iter_part
from s2s.data.preprocess.prepare import PrepareOptions, prepare
from s2s.data.testsets import read_test_records

from conftest import compose_config, mirror_dir


def _gz(path: Path, lines: list[str]) -> bytes:
    data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tsv_lines(n: int, repeat: int = 1) -> list[str]:
    return [f"english sentence {i // repeat}\tdeutscher satz {i} nummer" for i in range(n)]


def _tsv_config(path: str, **extra) -> dict:
    cfg = {
        "name": "mine",
        "src_lang": "en",
        "tgt_lang": "de",
        "sources": {"mine": {"path": path}},
        "split": {"tsv": f"mine/{Path(path).name}", "columns": {"en": 0, "de": 1}, "seed": 1, "valid": 10, "test": 12},
    }
    cfg.update(extra)
    return cfg


def test_local_tsv_file_without_checksums(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))  # as CI sets it: a mirror never stands in for a user's file
    corpus = tmp_path / "home" / "corpus.tsv.gz"
    _gz(corpus, _tsv_lines(120, repeat=2))
    ds = CorpusConfig.from_config(_tsv_config(str(corpus)))
    raw = tmp_path / "raw"
    assert download_dataset(ds, raw) == {"mine": ["corpus.tsv.gz"]}
    assert (raw / "mine/corpus.tsv.gz").read_bytes() == corpus.read_bytes()
    rows = list(iter_part(raw, ds, ds.split.part))
    assert rows[3] == ("english sentence 1", ("deutscher satz 3 nummer",))


def test_tsv_columns_chosen_by_language(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    folder = tmp_path / "folder"
    _gz(folder / "c.tsv.gz", [f"id{i}\tdeutsch {i}\tenglish {i}" for i in range(5)])
    cfg = _tsv_config(str(folder))
    cfg["split"] = None
    part = {"tsv": "mine/c.tsv.gz", "columns": {"de": 1, "en": 2}}
    cfg.update(train=part, valid=part, test_sets={"t": part})
    ds = CorpusConfig.from_config(cfg)
    download_dataset(ds, tmp_path / "raw")
    assert list(iter_part(tmp_path / "raw", ds, ds.train))[4] == ("english 4", ("deutsch 4",))


def test_url_source_with_several_references_and_sibling_mirrors(tmp_path, monkeypatch):
    """A mirror folder of one source finds the other sources in sibling folders named by mirror_name."""
    shared = tmp_path / "shared"
    sha = {}
    for split, n in (("train", 30), ("val", 5)):
        for lang in ("en", "de"):
            sha[f"{split}.{lang}.gz"] = _sha(
                _gz(shared / "main" / f"{split}.{lang}.gz", [f"{lang} {i}" for i in range(n)])
            )
    extra = {
        name: _sha(_gz(shared / "other" / name, [f"{name} {i}" for i in range(4)]))
        for name in ("t.src.en.gz", "t.ref.A.de.gz", "t.ref.B.de.gz")
    }
    cfg = {
        "name": "x",
        "src_lang": "en",
        "tgt_lang": "de",
        "sources": {
            "m": {"url": "http://127.0.0.1:9/unused", "mirror_name": "main", "sha256": sha},
            "o": {"url": "http://127.0.0.1:9/unused", "mirror_name": "other", "sha256": extra},
        },
        "train": {"pairs": "m/train"},
        "valid": {"pairs": "m/val"},
        "test_sets": {"two_refs": {"src": "o/t.src.en.gz", "refs": ["o/t.ref.A.de.gz", "o/t.ref.B.de.gz"]}},
    }
    ds = CorpusConfig.from_config(cfg)
    for mirror in (shared / "main", shared):  # a source's own folder, or the folder of all mirrors
        monkeypatch.setenv(MIRROR_ENV, str(mirror))
        raw = tmp_path / f"raw_{mirror.name}"
        download_dataset(ds, raw)
        rows = list(iter_part(raw, ds, ds.test_sets["two_refs"]))
        assert rows[2] == ("t.src.en.gz 2", ("t.ref.A.de.gz 2", "t.ref.B.de.gz 2"))

    out = tmp_path / "prepared"
    prepare(PrepareOptions(raw_dir=str(raw), out_dir=str(out), dataset=ds, vocab_size=20, max_eval_pairs=3))
    records = read_test_records(out / "testsets/two_refs.jsonl")
    assert len(records) == 3 and records[1].refs == ("t.ref.A.de.gz 1", "t.ref.B.de.gz 1")

    # one source elsewhere: its own mirror option
    moved = tmp_path / "elsewhere"
    (shared / "other").rename(moved)
    monkeypatch.setenv(MIRROR_ENV, str(shared / "main"))
    with pytest.raises(
        InputError, match=r"data\.sources\.o: the mirror .* holds neither its files nor a folder other/"
    ):
        download_dataset(ds, tmp_path / "raw2")
    cfg["sources"]["o"]["mirror"] = str(moved)
    download_dataset(CorpusConfig.from_config(cfg), tmp_path / "raw2")
    assert (tmp_path / "raw2/o/t.ref.B.de.gz").is_file()


def test_checksum_required_for_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path))
    cfg = _tsv_config("corpus.tsv")
    cfg["sources"] = {"mine": {"url": "http://127.0.0.1:9/x", "sha256": {}}}
    with pytest.raises(InputError, match=r"data\.sources\.mine\.sha256: no sha256 configured for corpus\.tsv"):
        download_dataset(CorpusConfig.from_config(cfg), tmp_path / "raw")


# --- errors: one line naming the file, line or option -----------------------------------------------


def _prepare_tsv(tmp_path: Path, lines: list[str], **cfg_extra) -> dict:
    corpus = tmp_path / "corpus.tsv"
    corpus.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = _tsv_config(str(corpus), **cfg_extra)
    ds = CorpusConfig.from_config(cfg)
    download_dataset(ds, tmp_path / "raw")
    return prepare(
        PrepareOptions(raw_dir=str(tmp_path / "raw"), out_dir=str(tmp_path / "out"), dataset=ds, vocab_size=40)
    )


def test_tsv_line_with_wrong_number_of_fields(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    lines = _tsv_lines(50)
    lines[36] = "only one field"
    with pytest.raises(InputError) as info:
        _prepare_tsv(tmp_path, lines)
    corpus = tmp_path / "corpus.tsv"
    assert str(info.value) == f"{corpus}, line 37: 1 tab-separated fields, expected 2 (as on line 1)"
    assert not (tmp_path / "raw").exists()  # the download stage already refuses it


def test_language_not_in_tsv_columns(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(
        InputError, match=r"data\.split\.columns: no column for language 'fr' \(columns given for: en, de\)"
    ):
        _prepare_tsv(tmp_path, _tsv_lines(50), tgt_lang="fr")


def test_column_beyond_the_fields(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    cfg_split = {"tsv": "mine/corpus.tsv", "columns": {"en": 0, "de": 2}, "seed": 1, "valid": 10, "test": 12}
    with pytest.raises(InputError, match=r"data\.split\.columns: column 2 asked for, but .*corpus\.tsv has only 2"):
        _prepare_tsv(tmp_path, _tsv_lines(50), split=cfg_split)


def test_missing_columns_option():
    cfg = _tsv_config("x.tsv")
    del cfg["split"]["columns"]
    with pytest.raises(InputError, match=r"data\.split\.columns: a TSV part needs the column of each language"):
        CorpusConfig.from_config(cfg)


def test_missing_local_file(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    folder = tmp_path / "mine"
    folder.mkdir()
    ds = CorpusConfig.from_config(_tsv_config(str(folder / "corpus.tsv")))
    with pytest.raises(InputError, match=r"data\.sources\.mine\.path: .*corpus\.tsv does not exist"):
        download_dataset(ds, tmp_path / "raw")


def test_language_not_in_pairs_files(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    for lang in ("en", "de"):
        _gz(tmp_path / "m" / f"train.{lang}.gz", ["a", "b"])
    cfg = {
        "name": "x",
        "src_lang": "en",
        "tgt_lang": "fr",
        "sources": {"m": {"path": str(tmp_path / "m")}},
        "train": {"pairs": "m/train"},
        "valid": {"pairs": "m/train"},
        "test_sets": {"t": {"pairs": "m/train"}},
    }
    with pytest.raises(InputError) as info:
        download_dataset(CorpusConfig.from_config(cfg), tmp_path / "raw")
    assert str(info.value) == (
        "data.train: source 'm' has no file train.fr[.gz] (language 'fr' not in the files; languages offered: de, en)"
    )


def test_split_that_ends_up_empty_in_the_stage(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    with pytest.raises(InputError, match=r"data\.split: the train split ends up empty"):
        _prepare_tsv(tmp_path, _tsv_lines(22))
    assert not (tmp_path / "out").exists()


def test_training_split_empty_after_filtering(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    lines = [f"{'word ' * 200}{i}\tkurz {i}" for i in range(60)]
    with pytest.raises(InputError, match="the training split ends up empty after filtering"):
        _prepare_tsv(tmp_path, lines)


@pytest.mark.parametrize(
    "change,message",
    [
        ({"primary_test": "nope"}, r"data\.primary_test='nope': not among the test sets \(test\)"),
        ({"tgt_lang": "en"}, r"data\.src_lang and data\.tgt_lang are both 'en'"),
        ({"split": None}, r"data\.train and data\.valid are required"),
    ],
)
def test_config_errors_name_the_option(change, message):
    with pytest.raises(InputError, match=message):
        CorpusConfig.from_config(_tsv_config("x.tsv", **change))


@pytest.mark.parametrize(
    "name,files",
    [
        ("multi30k", {"multi30k": 10, "multi30k_tok": 6}),
        ("multi30k_en_fr", {"multi30k": 10, "multi30k_tok": 6}),
        ("multi30k_en_cs", {"multi30k": 8, "multi30k_tok": 4}),  # no Czech test_2017_mscoco
        ("tatoeba_en_de", {"tatoeba": 1, "wmt22_src": 1, "wmt22_ref": 2}),
    ],
)
def test_recipes_download_offline_from_the_mirror_ci_sets(name, files, tmp_path, monkeypatch):
    """S2S_MIRROR=../shared/data/multi30k serves every recipe: the other sources are its siblings."""
    monkeypatch.setenv(MIRROR_ENV, str(mirror_dir()))
    ds = CorpusConfig.from_config(compose_config([f"data={name}"]).data)
    fetched = download_dataset(ds, tmp_path / "raw")
    assert {k: len(v) for k, v in fetched.items()} == files
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(files)

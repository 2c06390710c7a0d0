"""The preprocess stage's core: split, filter, augment, train SentencePiece, encode every split.

Everything is written into a temporary folder and published as ``out_dir`` in one rename.

Memory stays flat as the training corpus grows: the training pairs are streamed from ``data/raw``
(once per output segment), SentencePiece trains on a bounded, seeded sample of them (its own
``input_sentence_size`` / ``shuffle_input_sentence``), and the encoded ids go to flat files on disk
that become ``train.npz``.  Only the validation and test sets, which are small, are held in memory.

Design choices (see docs/data.md, "Augmentation"):
- Reversed pairs: the training set becomes en->de plus de->en, each source starting with the tag
  of the language to produce (``<2de>``, ``<2en>``); the tags are SentencePiece user symbols.
- Noise is *static*: the stage writes ``noise.copies`` noisy copies of the training pairs (source
  side only) next to the clean ones.  Static copies are byte-reproducible, versioned by DVC, and
  their statistics can be reported exactly; dynamic per-epoch noise would make resume and DDP
  sharding depend on RNG state in the data loader.  Word level is the default because it follows
  Lample et al. 2018 and keeps a dropped word from leaving half a word behind.
- Validation and test sources are capped at ``max_eval_pieces`` pieces (truncated, counted, warned
  about): one pathological line (100,000 characters) would otherwise make every validation and
  the evaluate stage's beam search run for hours.
"""

from __future__ import annotations

import logging
import random
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from s2s.common.config_guard import check_params_file
from s2s.common.io import InputError, atomic_path
from s2s.data.download.sources import CorpusConfig, Part, iter_part, read_tok_refs
from s2s.data.encoded import EvalRecord, save_sequences, write_eval_records
from s2s.data.preprocess.augment import Pair, lang_tag, tag_source
from s2s.data.preprocess.noise import NoiseConfig, NoiseStats, noise_sentence, noise_tokens
from s2s.data.preprocess.split import TEST, TRAIN, VALID, assign_split, split_sizes
from s2s.data.testsets import TestRecord, write_test_records
from s2s.data.vocab import Vocabulary, train_sentencepiece

log = logging.getLogger(__name__)
BLANK = "<blank>"
CHUNK = 4096  # pairs encoded at once


@dataclass
class PrepareOptions:
    """Plain options for :func:`prepare`, filled from the ``data`` and ``preprocess`` config groups."""

    raw_dir: str
    out_dir: str
    dataset: CorpusConfig
    vocab_size: int
    model_type: str = "unigram"
    character_coverage: float = 1.0
    input_sentence_size: int = 1_000_000
    shuffle_input_sentence: bool = True
    max_train_pairs: int | None = None
    max_eval_pairs: int | None = None
    max_words: int = 100
    max_pieces: int = 150
    max_eval_pieces: int = 256
    reverse: bool = False
    noise_copies: int = 0
    noise_level: str = "word"
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    noise_replace_clean: bool = False
    seed: int = 1234


def _split_tag(text: str, tagged: bool) -> tuple[str, str]:
    if not tagged:
        return "", text
    tag, _, rest = text.partition(" ")
    return tag + " ", rest


def cap_pieces(ids: Sequence[int], cap: int) -> tuple[list[int], bool]:
    """The first ``cap`` ids (a language tag at position 0 stays) and whether anything was cut."""
    return list(ids[:cap]), len(ids) > cap


def _check_options(opt: PrepareOptions) -> None:
    if opt.noise_level not in ("word", "subword"):
        raise InputError(f"preprocess.noise.level={opt.noise_level!r}: expected 'word' or 'subword'")
    if opt.noise_copies < 0:
        raise InputError(f"preprocess.noise.copies={opt.noise_copies}: must be >= 0")
    if opt.max_eval_pieces < 1:
        raise InputError(f"preprocess.filter.max_eval_pieces={opt.max_eval_pieces}: must be >= 1")
    if opt.input_sentence_size < 0:
        raise InputError(f"preprocess.spm.input_sentence_size={opt.input_sentence_size}: must be >= 0 (0: all)")


class _IdsWriter:
    """Appends encoded pairs to flat int32 files on disk; :meth:`save` turns them into ``<name>.npz``
    in :mod:`s2s.data.encoded`'s format without loading them (numpy writes a memmap in chunks)."""

    def __init__(self, folder: Path, name: str):
        self.folder, self.name = folder, name
        self.paths = {side: folder / f".{name}.{side}.bin" for side in ("src", "tgt")}
        self.files = {side: open(p, "wb") for side, p in self.paths.items()}  # noqa: SIM115 - closed in save()
        self.lengths = {side: array("q") for side in self.paths}

    def __len__(self) -> int:
        return len(self.lengths["src"])

    def add(self, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]) -> None:
        for side, seqs in (("src", src), ("tgt", tgt)):
            self.lengths[side].extend(len(s) for s in seqs)
            flat = np.fromiter((t for s in seqs for t in s), dtype=np.int32, count=sum(len(s) for s in seqs))
            self.files[side].write(flat.tobytes())

    def save(self) -> None:
        arrays = {}
        for side, fh in self.files.items():
            fh.close()
            n = int(np.sum(np.frombuffer(self.lengths[side], dtype=np.int64))) if len(self) else 0
            arrays[side] = (
                np.memmap(self.paths[side], dtype=np.int32, mode="r", shape=(n,)) if n else np.zeros(0, np.int32)
            )
            offsets = np.zeros(len(self) + 1, dtype=np.int64)
            offsets[1:] = np.cumsum(np.frombuffer(self.lengths[side], dtype=np.int64))
            arrays[f"{side}_offsets"] = offsets
        with open(self.folder / f"{self.name}.npz", "wb") as out:
            np.savez(out, **arrays)
        del arrays
        for p in self.paths.values():
            p.unlink()


class _Corpus:
    """The dataset's parts read from ``data/raw``: the training pairs as a stream, the rest in memory."""

    def __init__(self, opt: PrepareOptions):
        self.opt, self.ds, self.raw = opt, opt.dataset, Path(opt.raw_dir)
        self.roles: np.ndarray | None = None
        self.split_stats: dict[str, int] = {}
        self.filtered: dict[str, int] = {}
        held_out: dict[int, list[tuple[str, tuple[str, ...]]]] = {VALID: [], TEST: []}
        if self.ds.split is not None:
            sp = self.ds.split
            pairs = ((s, refs[0]) for s, refs in iter_part(self.raw, self.ds, sp.part))
            split = assign_split(pairs, sp.valid, sp.test, sp.seed)
            self.roles, self.split_stats = split.roles, split.stats()
            for role, row in zip(self.roles, iter_part(self.raw, self.ds, sp.part), strict=True):
                if role != TRAIN:
                    held_out[int(role)].append(row)
            self.valid = held_out[VALID]
        else:
            assert self.ds.valid is not None
            self.valid = list(iter_part(self.raw, self.ds, self.ds.valid))
        self.tests: dict[str, tuple[Part, list[tuple[str, tuple[str, ...]]]]] = {}
        for name in self.ds.test_set_names():
            part = self.ds.test_sets[name]
            rows = (
                held_out[TEST]
                if self.ds.split and name == self.ds.split.test_name
                else list(iter_part(self.raw, self.ds, part))
            )
            self.tests[name] = (part, rows)

    def raw_train(self) -> Iterator[tuple[str, str]]:
        part = self.ds.split.part if self.ds.split else self.ds.train
        assert part is not None
        limit, n = self.opt.max_train_pairs, 0
        for i, (s, refs) in enumerate(iter_part(self.raw, self.ds, part)):
            if self.roles is not None and self.roles[i] != TRAIN:
                continue
            if limit and n >= limit:
                return
            n += 1
            yield s, refs[0]

    def train(self, count: bool = False) -> Iterator[tuple[str, str]]:
        """Training pairs with both sides non-empty and at most ``max_words`` words each."""
        stats = {"pairs_in": 0, "empty": 0, "too_long_words": 0}
        for s, t in self.raw_train():
            stats["pairs_in"] += 1
            if not s.strip() or not t.strip():
                stats["empty"] += 1
            elif len(s.split()) > self.opt.max_words or len(t.split()) > self.opt.max_words:
                stats["too_long_words"] += 1
            else:
                yield s, t
        if count:
            self.filtered = stats


def _training_pairs(corpus: _Corpus, reverse_half: bool, tagged: bool, count: bool) -> Iterator[Pair]:
    src_lang, tgt_lang = corpus.ds.langs
    for s, t in corpus.train(count=count):
        if reverse_half:
            yield Pair(tag_source(t, src_lang), s, tgt_lang, src_lang)
        else:
            yield Pair(tag_source(s, tgt_lang) if tagged else s, t, src_lang, tgt_lang)


def _chunks(pairs: Iterator[Pair]) -> Iterator[list[Pair]]:
    chunk: list[Pair] = []
    for p in pairs:
        chunk.append(p)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_train(opt: PrepareOptions, corpus: _Corpus, vocab: Vocabulary, tmp: Path, stats: dict[str, Any]) -> None:
    """Encode the training pairs segment by segment (clean, then each noisy copy; each forward then
    reversed), in the order and with the random draws of the in-memory version."""
    rng = random.Random(opt.seed)
    noise_stats = NoiseStats()
    writer = _IdsWriter(tmp, "train")
    too_long = total = 0
    halves = (False, True) if opt.reverse else (False,)
    copies = ([] if opt.noise_replace_clean else [0]) + list(range(1, opt.noise_copies + 1))
    blank_id = vocab.piece_to_id(opt.noise.blank_token) if opt.noise_copies else None
    skip = 1 if opt.reverse else 0
    first = True
    for copy in copies:
        for half in halves:
            for chunk in _chunks(_training_pairs(corpus, half, opt.reverse, count=first)):
                tgt_ids = vocab.encode([p.tgt for p in chunk])
                if copy and opt.noise_level == "word":
                    texts = []
                    for p in chunk:
                        tag, text = _split_tag(p.src, opt.reverse)
                        noisy, st = noise_sentence(text, opt.noise, rng)
                        noise_stats.add(st)
                        texts.append(tag + noisy)
                    src_ids = vocab.encode(texts)
                elif copy:
                    src_ids = []
                    for ids in vocab.encode([p.src for p in chunk]):
                        noisy_ids, st = noise_tokens(ids[skip:], opt.noise, rng, blank=blank_id)
                        noise_stats.add(st)
                        src_ids.append(ids[:skip] + noisy_ids)
                else:
                    src_ids = vocab.encode([p.src for p in chunk])
                keep = [i for i in range(len(chunk)) if max(len(src_ids[i]), len(tgt_ids[i])) <= opt.max_pieces]
                total += len(chunk)
                too_long += len(chunk) - len(keep)
                writer.add([src_ids[i] for i in keep], [tgt_ids[i] for i in keep])
            first = False
    if not corpus.filtered:  # noise_replace_clean with 0 copies: nothing streamed
        list(corpus.train(count=True))
    writer.save()
    stats["train"] = {"pairs_in": corpus.filtered.get("pairs_in", 0)}
    stats["train"]["filtered"] = {
        "empty": corpus.filtered.get("empty", 0),
        "too_long_words": corpus.filtered.get("too_long_words", 0),
        "too_long_pieces": too_long,
    }
    stats["train"]["pairs_out"] = len(writer)
    stats["train"]["noise"] = noise_stats.as_dict()
    if len(writer) == 0:
        raise InputError(
            "the training split ends up empty after filtering (preprocess.filter.max_words / max_pieces); "
            f"statistics: {stats['train']}"
        )


def _eval_records(
    opt: PrepareOptions, rows: Sequence[tuple[str, tuple[str, ...]]], part: Part | None, name: str
) -> list[TestRecord]:
    """Forward records (all references), then, with reversed pairs, the swapped single-reference ones."""
    ds = opt.dataset
    rows = rows[: opt.max_eval_pairs] if opt.max_eval_pairs else rows
    if not rows:
        raise InputError(f"the {name} set ends up empty (check data.max_eval_pairs and its files)")
    tok = {lang: read_tok_refs(opt.raw_dir, part, lang) if part is not None else None for lang in ds.langs}
    for lang, lines in tok.items():
        if lines is not None and len(lines) < len(rows):
            raise InputError(
                f"{part.option if part else name}.tok_refs ({lang}): {len(lines)} lines, the set has {len(rows)}"
            )
    records = [
        TestRecord(ds.src_lang, ds.tgt_lang, s, refs, (tok[ds.tgt_lang][i],) if tok[ds.tgt_lang] else ())
        for i, (s, refs) in enumerate(rows)
    ]
    if opt.reverse and (part is None or part.kind != "text"):
        records += [
            TestRecord(ds.tgt_lang, ds.src_lang, refs[0], (s,), (tok[ds.src_lang][i],) if tok[ds.src_lang] else ())
            for i, (s, refs) in enumerate(rows)
        ]
    return records


def _encode_eval(
    opt: PrepareOptions, vocab: Vocabulary, records: Sequence[TestRecord]
) -> tuple[list[list[int]], list[list[int]], int]:
    """Ids of an evaluation set, sources and references capped at ``max_eval_pieces``; returns the
    number of sources cut."""
    texts = [tag_source(r.source, r.tgt_lang) if opt.reverse else r.source for r in records]
    src, tgt, cut = [], [], 0
    for ids, ref_ids in zip(vocab.encode(texts), vocab.encode([r.refs[0] for r in records]), strict=True):
        capped, was_cut = cap_pieces(ids, opt.max_eval_pieces)
        src.append(capped)
        tgt.append(cap_pieces(ref_ids, opt.max_eval_pieces)[0])
        cut += was_cut
    return src, tgt, cut


def prepare(opt: PrepareOptions) -> dict[str, Any]:
    """Run the whole preprocess stage; returns the statistics written to the report."""
    _check_options(opt)
    ds = opt.dataset
    corpus = _Corpus(opt)
    stats: dict[str, Any] = {"seed": opt.seed, "reverse": opt.reverse, "noise_copies": opt.noise_copies}
    stats["dataset"] = {
        "name": ds.name,
        "direction": f"{ds.src_lang}-{ds.tgt_lang}",
        "src_lang": ds.src_lang,
        "tgt_lang": ds.tgt_lang,
    }
    if corpus.roles is not None:
        assert ds.split is not None
        stats["split"] = {"seed": ds.split.seed, **split_sizes(corpus.roles), **corpus.split_stats}
    if next(corpus.train(), None) is None:
        raise InputError("the training split ends up empty after filtering (preprocess.filter.max_words)")

    symbols = [lang_tag(lang) for lang in ds.langs] if opt.reverse else []
    if opt.noise_copies:
        symbols.append(opt.noise.blank_token)
    warnings: list[str] = []
    with atomic_path(opt.out_dir, is_dir=True) as tmp:
        model_file = train_sentencepiece(
            (side for pair in corpus.train() for side in pair),
            tmp / "spm",
            vocab_size=opt.vocab_size,
            model_type=opt.model_type,
            character_coverage=opt.character_coverage,
            user_defined_symbols=symbols,
            seed=opt.seed,
            input_sentence_size=opt.input_sentence_size,
            shuffle_input_sentence=opt.shuffle_input_sentence,
        )
        vocab = Vocabulary(model_file)
        _write_train(opt, corpus, vocab, tmp, stats)

        valid = _eval_records(opt, corpus.valid, ds.valid, "validation")
        src, tgt, cut = _encode_eval(opt, vocab, valid)
        save_sequences(tmp / "valid.npz", src, tgt)
        write_eval_records(tmp / "valid.tsv", [EvalRecord(r.src_lang, r.tgt_lang, r.source, r.refs[0]) for r in valid])
        stats["valid"] = {"pairs": len(valid), "truncated_sources": cut}
        if cut:
            warnings.append(
                f"{cut} validation source(s) longer than {opt.max_eval_pieces} pieces truncated "
                "(preprocess.filter.max_eval_pieces)"
            )
        stats["test_sets"] = {}
        for name, (part, rows) in corpus.tests.items():
            records = _eval_records(opt, rows, part, f"test set {name!r}")
            write_test_records(tmp / "testsets" / f"{name}.jsonl", records)
            src, tgt, cut = _encode_eval(opt, vocab, records)
            if name == ds.primary_test:
                save_sequences(tmp / "test.npz", src, tgt)
            stats["test_sets"][name] = {
                "pairs": len(records),
                "references": len(records[0].refs),
                "tokenized_references": bool(records[0].tok_refs),
                "truncated_sources": cut,
            }
            if cut:
                warnings.append(
                    f"{cut} source(s) of test set {name} longer than {opt.max_eval_pieces} pieces "
                    "truncated (preprocess.filter.max_eval_pieces)"
                )
        stats["test"] = {"pairs": stats["test_sets"][ds.primary_test]["pairs"], "name": ds.primary_test}
        stats["vocab_size"] = len(vocab)
        stats["user_defined_symbols"] = symbols
        check_params_file()  # made with what params.yaml said at the start, or nothing is published
    stats["warnings"] = warnings
    for w in warnings:
        log.warning("%s", w)
    return stats

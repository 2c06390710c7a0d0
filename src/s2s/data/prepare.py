"""The preprocess stage's core: filter, augment, train SentencePiece, encode every split.

Everything is written into a temporary folder and published as ``out_dir`` in one rename.

Design choices (see README "Augmentation"):
- Reversed pairs: the training set becomes en->de plus de->en, each source starting with the tag
  of the language to produce (``<2de>``, ``<2en>``); the tags are SentencePiece user symbols.
- Noise is *static*: the stage writes ``noise.copies`` noisy copies of the training pairs (source
  side only) next to the clean ones.  Static copies are byte-reproducible, versioned by DVC, and
  their statistics can be reported exactly; dynamic per-epoch noise would make resume and DDP
  sharding depend on RNG state in the data loader.  Word level is the default because it follows
  Lample et al. 2018 and keeps a dropped word from leaving half a word behind.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from s2s.data.augment import Pair, lang_tag, make_pairs, with_reversed
from s2s.data.corpus import read_parallel, split_files
from s2s.data.dataset import EvalRecord, ParallelData, write_eval_records
from s2s.data.noise import NoiseConfig, NoiseStats, noise_sentence, noise_tokens
from s2s.data.vocab import Vocabulary, train_sentencepiece
from s2s.io import InputError, atomic_path

BLANK = "<blank>"


@dataclass
class PrepareOptions:
    """Plain options for :func:`prepare`, filled from the ``data`` and ``preprocess`` config groups."""

    raw_dir: str
    out_dir: str
    src_lang: str
    tgt_lang: str
    splits: dict[str, str]  # role (train/valid/test) -> file split name
    vocab_size: int
    model_type: str = "unigram"
    character_coverage: float = 1.0
    max_train_pairs: int | None = None
    max_eval_pairs: int | None = None
    max_words: int = 100
    max_pieces: int = 150
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


def filter_pairs(src: Sequence[str], tgt: Sequence[str], max_words: int) -> tuple[list[int], dict[str, int]]:
    """Indices of training pairs to keep: both sides non-empty and at most ``max_words`` words."""
    keep, empty, too_long = [], 0, 0
    for i, (s, t) in enumerate(zip(src, tgt, strict=True)):
        if not s.strip() or not t.strip():
            empty += 1
        elif len(s.split()) > max_words or len(t.split()) > max_words:
            too_long += 1
        else:
            keep.append(i)
    return keep, {"empty": empty, "too_long_words": too_long}


def prepare(opt: PrepareOptions) -> dict[str, Any]:
    """Run the whole preprocess stage; returns the statistics written to the report."""
    if opt.noise_level not in ("word", "subword"):
        raise InputError(f"preprocess.noise.level={opt.noise_level!r}: expected 'word' or 'subword'")
    if opt.noise_copies < 0:
        raise InputError(f"preprocess.noise.copies={opt.noise_copies}: must be >= 0")
    langs = (opt.src_lang, opt.tgt_lang)
    raw = {}
    for role, split in opt.splits.items():
        src, tgt = read_parallel(split_files(opt.raw_dir, split, *langs))
        limit = opt.max_train_pairs if role == "train" else opt.max_eval_pairs
        raw[role] = (src[:limit], tgt[:limit]) if limit else (src, tgt)

    stats: dict[str, Any] = {"seed": opt.seed, "reverse": opt.reverse, "noise_copies": opt.noise_copies}
    train_src, train_tgt = raw["train"]
    keep, filtered = filter_pairs(train_src, train_tgt, opt.max_words)
    train_src, train_tgt = [train_src[i] for i in keep], [train_tgt[i] for i in keep]
    stats["train"] = {"pairs_in": len(raw["train"][0]), "filtered": filtered}

    def pairs_for(src: list[str], tgt: list[str]) -> list[Pair]:
        if opt.reverse:
            return with_reversed(src, tgt, *langs)
        return make_pairs(src, tgt, *langs, tagged=False)

    train_pairs = pairs_for(train_src, train_tgt)
    rng = random.Random(opt.seed)
    noise_stats = NoiseStats()
    noisy_word_pairs: list[Pair] = []
    if opt.noise_copies and opt.noise_level == "word":
        for _ in range(opt.noise_copies):
            for p in train_pairs:
                tag, text = _split_tag(p.src, opt.reverse)
                noisy, st = noise_sentence(text, opt.noise, rng)
                noise_stats.add(st)
                noisy_word_pairs.append(Pair(tag + noisy, p.tgt, p.src_lang, p.tgt_lang))

    symbols = [lang_tag(lang) for lang in langs] if opt.reverse else []
    if opt.noise_copies:
        symbols.append(opt.noise.blank_token)
    with atomic_path(opt.out_dir, is_dir=True) as tmp:
        model_file = train_sentencepiece(
            [*train_src, *train_tgt],
            tmp / "spm",
            vocab_size=opt.vocab_size,
            model_type=opt.model_type,
            character_coverage=opt.character_coverage,
            user_defined_symbols=symbols,
            seed=opt.seed,
        )
        vocab = Vocabulary(model_file)
        clean_src = vocab.encode([p.src for p in train_pairs])
        tgt_ids = vocab.encode([p.tgt for p in train_pairs])
        src_ids, out_tgt = ([] if opt.noise_replace_clean else list(clean_src)), []
        if not opt.noise_replace_clean:
            out_tgt.extend(tgt_ids)
        if opt.noise_copies and opt.noise_level == "word":
            src_ids.extend(vocab.encode([p.src for p in noisy_word_pairs]))
            out_tgt.extend(tgt_ids * opt.noise_copies)
        elif opt.noise_copies:
            blank_id = vocab.piece_to_id(opt.noise.blank_token)
            skip = 1 if opt.reverse else 0
            for _ in range(opt.noise_copies):
                for ids in clean_src:
                    noisy, st = noise_tokens(ids[skip:], opt.noise, rng, blank=blank_id)
                    noise_stats.add(st)
                    src_ids.append(ids[:skip] + noisy)
                out_tgt.extend(tgt_ids)
        kept = [
            i for i in range(len(src_ids)) if len(src_ids[i]) <= opt.max_pieces and len(out_tgt[i]) <= opt.max_pieces
        ]
        stats["train"]["filtered"]["too_long_pieces"] = len(src_ids) - len(kept)
        ParallelData.from_sequences([src_ids[i] for i in kept], [out_tgt[i] for i in kept]).save(tmp / "train.npz")
        stats["train"]["pairs_out"] = len(kept)
        stats["train"]["noise"] = noise_stats.as_dict()

        for role in ("valid", "test"):
            pairs = pairs_for(*raw[role])
            ParallelData.from_sequences(
                vocab.encode([p.src for p in pairs]), vocab.encode([p.tgt for p in pairs])
            ).save(tmp / f"{role}.npz")
            records = [EvalRecord(p.direction, _split_tag(p.src, opt.reverse)[1], p.tgt) for p in pairs]
            write_eval_records(tmp / f"{role}.tsv", records)
            stats[role] = {"pairs": len(pairs)}
        stats["vocab_size"] = len(vocab)
        stats["user_defined_symbols"] = symbols
    return stats

"""The SentencePiece vocabulary: training it on the training split, encoding and detokenizing."""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import sentencepiece as spm

from s2s.common.io import InputError
from s2s.tokens import BOS_ID, EOS_ID, PAD_ID, UNK_ID

_LANG_TAG = re.compile(r"<2[^\s>]+>")  # as made by s2s.data.preprocess.augment.lang_tag


def train_sentencepiece(
    sentences: Iterable[str],
    model_prefix: str | Path,
    *,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 1.0,
    user_defined_symbols: Sequence[str] = (),
    seed: int = 1234,
    num_threads: int = 1,
    input_sentence_size: int = 0,
    shuffle_input_sentence: bool = True,
) -> Path:
    """Train a SentencePiece model; returns the ``.model`` path (``.vocab`` beside it).

    ``user_defined_symbols`` (language tags, ``<blank>``) are kept as single pieces.  The seed and a
    single thread make the model byte-identical between runs.  The sentences are streamed and the
    model returned in memory, so no file path (such as the stage's random temporary folder) ends
    up in the model's trainer spec and breaks that.  ``input_sentence_size`` (0: all) bounds the
    sentences SentencePiece keeps, a seeded reservoir sample when ``shuffle_input_sentence``: memory
    and time stay bounded however large the corpus.
    """
    prefix = Path(model_prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=(line.replace("\n", " ") for line in sentences),
            model_writer=model,
            vocab_size=vocab_size,
            model_type=model_type,
            character_coverage=character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            user_defined_symbols=list(user_defined_symbols),
            num_threads=num_threads,
            input_sentence_size=input_sentence_size,
            shuffle_input_sentence=shuffle_input_sentence,
            minloglevel=2,
        )
    except RuntimeError as err:
        match = re.search(r"value <= (\d+)", str(err))
        if match:
            raise InputError(
                f"preprocess.spm.vocab_size={vocab_size} is larger than the training data allows "
                f"(at most {match.group(1)} for this data); lower it"
            ) from err
        raise InputError(f"SentencePiece training failed: {err}") from err
    prefix.with_suffix(".model").write_bytes(model.getvalue())
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    # the same "piece<TAB>score" listing SentencePiece writes beside a model trained from a file
    with open(prefix.with_suffix(".vocab"), "w", encoding="utf-8", newline="\n") as fh:
        for i in range(sp.get_piece_size()):
            fh.write(f"{sp.id_to_piece(i)}\t{sp.get_score(i):g}\n")
    return prefix.with_suffix(".model")


class Vocabulary:
    """A loaded SentencePiece model with the project's id conventions (pad 0, unk 1, bos 2, eos 3)."""

    def __init__(self, model_file: str | Path):
        self.model_file = Path(model_file)
        if not self.model_file.is_file():
            raise InputError(f"{self.model_file}: SentencePiece model not found")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.model_file))
        except (RuntimeError, OSError) as err:  # truncated or not a model: sentencepiece's parse error
            raise InputError(
                f"{self.model_file}: not a readable SentencePiece model ({' '.join(str(err).split())[:200]}); "
                "rerun the preprocess stage"
            ) from err

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, sentences: Sequence[str]) -> list[list[int]]:
        """Ids of each sentence.  A leading language tag (``<2de> ...``) becomes one id at position 0:
        SentencePiece alone would put a lone "▁" piece before it."""
        tags, texts = [], []
        for sentence in sentences:
            head, _, rest = sentence.partition(" ")
            tag = self.sp.piece_to_id(head) if _LANG_TAG.fullmatch(head) else UNK_ID
            tags.append(tag)
            texts.append(rest if tag != UNK_ID else sentence)
        encoded = self.sp.encode(texts, out_type=int)
        return [ids if tag == UNK_ID else [tag, *ids] for tag, ids in zip(tags, encoded, strict=True)]

    def pieces(self, sentence: str) -> list[str]:
        return self.sp.encode(sentence, out_type=str)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return [self.sp.decode([i for i in seq if i > EOS_ID or i == UNK_ID]) for seq in ids]

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i)

    def piece_to_id(self, piece: str) -> int:
        return self.sp.piece_to_id(piece)


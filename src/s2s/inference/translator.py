"""The translate command's core: raw text in, detokenized text out.

Everything that can be wrong with a request (the input, the output folder, the language tag) is
checked before the first translation and before the output is touched; the output file is
written whole under a temporary name and renamed, so an existing file is never left truncated.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from s2s.common.io import InputError, atomic_path, decode_lines
from s2s.data.preprocess.augment import tag_source
from s2s.data.vocab import Vocabulary
from s2s.inference.batching import translate_ids
from s2s.inference.compilation import compile_decoder_step
from s2s.inference.device import resolve_device
from s2s.inference.search import Hypothesis, SearchOptions
from s2s.models.model_file import load_model_file
from s2s.models.seq2seq import Seq2Seq
from s2s.tokens import UNK_ID


def load_decoding_model(model_file: str | Path, spm_file: str | Path, decode_cfg: Any) -> Seq2Seq:
    """A model file ready to decode, as evaluate and translate both want it: loaded (and checked
    against the vocabulary), on ``decode.device``, its decoder step compiled per ``decode.compile``."""
    model, _ = load_model_file(model_file, spm_file)
    model.to(resolve_device(decode_cfg.get("device", "auto")))
    compile_decoder_step(model, decode_cfg.get("compile", False), "decode.compile")
    return model


_TAG = re.compile(r"<2[^\s>]+>")  # the form of s2s.data.preprocess.augment.lang_tag


def language_tags(vocab: Vocabulary) -> list[str]:
    """The target-language tags (``<2de>``) that are single pieces of the vocabulary."""
    pieces = (vocab.id_to_piece(i) for i in range(len(vocab)))
    return sorted(p for p in pieces if _TAG.fullmatch(p))


def check_target_lang(vocab: Vocabulary, target_lang: str | None) -> None:
    """Refuse a tag the model never saw: SentencePiece would split it into ``▁ <unk> 2 <unk>`` and
    the model would translate garbage; and a tagged model needs to be told the direction."""
    known = language_tags(vocab)
    if target_lang is None:
        if known:
            raise InputError(
                f"translate.target_lang is not set but this model translates in several directions: "
                f"set it to one of {', '.join(t[2:-1] for t in known)}"
            )
        return
    tag = tag_source("", target_lang).strip()
    tag_id = vocab.piece_to_id(tag)
    if tag_id == UNK_ID or vocab.id_to_piece(tag_id) != tag:
        where = (
            f"it knows {', '.join(t[2:-1] for t in known)}"
            if known
            else "it was trained without reversed pairs and knows no language tag: leave translate.target_lang unset"
        )
        raise InputError(f"translate.target_lang={target_lang}: the model has no language tag {tag} ({where})")


def clean_line(line: str) -> str:
    """A lone carriage return inside a line becomes a space: the line stays one line."""
    return line.replace("\r", " ")


# SentencePiece pieces are at most 16 characters of at most 4 UTF-8 bytes: a line longer than this
# many bytes per allowed piece holds more pieces than are translated, so the rest is never read whole
BYTES_PER_PIECE = 64
# the whole input held in memory at most (its translations are held too); more is refused, not read
MAX_INPUT_BYTES = 256 * 1024 * 1024
_CHUNK = 1 << 16


def read_input(
    source: str | Path, stream: BinaryIO | None = None, max_src_pieces: int | None = 256
) -> list[str]:
    """All lines of ``source`` (a file, or ``-`` for ``stream``), split at ``\\n`` only, read with bounds.

    A line longer than ``max_src_pieces`` x :data:`BYTES_PER_PIECE` bytes is cut there (with a
    warning naming the line; the translator cuts at ``max_src_pieces`` pieces anyway) and the rest
    of it is skipped in chunks, never held; NUL bytes (binary input: ``/dev/zero``,
    ``/dev/urandom``) are refused at the first chunk; more than :data:`MAX_INPUT_BYTES` is refused
    before it is read. A file that is not UTF-8 text fails naming the line.
    """
    name = "standard input" if str(source) == "-" else str(source)
    if str(source) == "-":
        if stream is None:
            raise InputError("translate.input=-: standard input is closed")
        return _read_lines(stream, name, "translate.input=-", max_src_pieces)
    path = Path(source)
    if not path.exists():
        raise InputError(f"translate.input={path}: file not found")
    if path.is_dir():
        raise InputError(f"translate.input={path}: is a folder, not a file")
    try:
        with open(path, "rb") as f:
            return _read_lines(f, name, f"translate.input={path}", max_src_pieces)
    except OSError as err:
        raise InputError(f"translate.input={path}: cannot read ({err.strerror or err})") from err


def _read_lines(stream: BinaryIO, name: str, option: str, max_src_pieces: int | None) -> list[str]:
    # one piece more than are translated: a cut line still holds more, so the translator's own
    # warning ("only the first N pieces are translated") names it, once
    line_cap = ((max_src_pieces or 256) + 1) * BYTES_PER_PIECE
    lines: list[bytes] = []
    total = 0
    while True:
        try:
            line = stream.readline(line_cap + 1)
        except OSError as err:
            raise InputError(f"{option}: cannot read ({err.strerror or err})") from err
        if not line:
            break
        number = len(lines) + 1
        head = line[: _char_boundary(line)] if len(line) > line_cap else line
        try:
            head.decode("utf-8")
        except UnicodeDecodeError as err:
            raise InputError(f"{name}, line {number}: invalid UTF-8 ({err.reason} at byte {err.start})") from err
        if b"\0" in line:
            raise InputError(f"{name}, line {number}: contains a NUL byte (binary input, not text)")
        if len(line) > line_cap and not line.endswith(b"\n"):
            line = line[:line_cap]
            line = line[: _char_boundary(line)]  # then skip the rest of the line without holding it
            rest_nul, skipped = _skip_to_newline(stream, MAX_INPUT_BYTES - total)
            if rest_nul:
                raise InputError(f"{name}, line {number}: contains a NUL byte (binary input, not text)")
            total += skipped
        total += len(line)
        if total > MAX_INPUT_BYTES:
            raise InputError(f"{option}: more than {MAX_INPUT_BYTES // (1024 * 1024)} MiB of input; split it")
        lines.append(line.rstrip(b"\n"))
    out = decode_lines(b"\n".join(lines) + (b"\n" if lines else b""), name)
    return [clean_line(line) for line in out]


def _char_boundary(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 character cut in two at its end."""
    start = len(data)
    while start > 0 and len(data) - start < 4 and (data[start - 1] & 0xC0) == 0x80:
        start -= 1  # back over continuation bytes to the last character's lead byte
    if start == 0 or data[start - 1] < 0xC0:
        return len(data)  # ends on ASCII or on stray continuation bytes (left to the UTF-8 check)
    lead = data[start - 1]
    need = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    return len(data) if len(data) - (start - 1) >= need else start - 1


def _skip_to_newline(stream: BinaryIO, budget: int) -> tuple[bool, int]:
    """Read and drop up to the next newline in chunks, at most ``budget`` (+ one chunk) bytes:
    (a NUL byte was seen, the bytes dropped)."""
    skipped = 0
    while skipped <= budget:
        chunk = stream.readline(_CHUNK)
        skipped += len(chunk)
        if b"\0" in chunk:
            return True, skipped
        if not chunk or chunk.endswith(b"\n"):
            break
    return False, skipped


def check_output(output: str) -> None:
    """Fail before any work when the output cannot be written."""
    if output == "-":
        return
    path = Path(output)
    if path.is_dir():
        raise InputError(f"translate.output={output}: is a folder, not a file")
    parent = path.parent
    if not parent.is_dir():
        raise InputError(f"translate.output={output}: folder {parent} does not exist")
    if not _is_special(path) and not os.access(parent, os.W_OK):
        raise InputError(f"translate.output={output}: folder {parent} is not writable")


def _is_special(path: Path) -> bool:
    """A device or pipe (``/dev/null``, a FIFO): written in place, never renamed over."""
    try:
        return not stat.S_ISREG(path.stat().st_mode)
    except FileNotFoundError:
        return False


def write_output(output: str, text: str) -> None:
    """Write ``text`` to ``output`` (``-``: standard output), whole or not at all."""
    try:
        if output == "-":
            write_stdout(text)
        elif _is_special(Path(output)):
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
        else:
            with atomic_path(output) as tmp:
                tmp.write_text(text, encoding="utf-8")
    except OSError as err:
        raise InputError(f"translate.output={output}: cannot write ({err.strerror or err})") from err


def write_stdout(text: str) -> None:
    """Write and flush standard output; on failure (a full disk, a closed pipe) point it at
    ``/dev/null`` so that Python's own flush at exit cannot fail a second time with a traceback."""
    if sys.stdout is None:
        raise OSError("standard output is closed")
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        raise


MODEL_URI_SCHEMES = ("models:/", "runs:/")


def is_model_uri(model: str) -> bool:
    """``models:/<name>@<alias>`` or ``runs:/<run id>/model``: an MLflow Model to download first."""
    return str(model).startswith(MODEL_URI_SCHEMES)


def model_files(model: str | Path, spm: str | Path) -> tuple[Path, Path]:
    """(model.pt, spm.model) of ``model``: a model file (with ``spm``), a folder holding
    ``model.pt`` (``models/``, the DVC artifact ``translator``: with its own ``spm.model``, else
    ``spm``), or an MLflow Model folder (both are its artifacts)."""
    path = Path(model)
    if not path.is_dir():
        return path, Path(spm)
    if (path / "MLmodel").is_file():
        import yaml

        mlmodel = yaml.safe_load((path / "MLmodel").read_text(encoding="utf-8")) or {}
        artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts", {})
        try:
            return path / artifacts["model"]["path"], path / artifacts["spm"]["path"]
        except (KeyError, TypeError) as err:
            raise InputError(f"translate.model={model}: an MLflow Model, but not one of this project") from err
    if (path / "model.pt").is_file():
        own = path / "spm.model"  # the vocabulary the training exported beside the weights
        return path / "model.pt", own if own.is_file() else Path(spm)
    raise InputError(f"translate.model={model}: a folder without model.pt or MLmodel")


class Translator:
    """A loaded model with its vocabulary and decoding options."""

    def __init__(
        self,
        model: Any,
        vocab: Vocabulary,
        opts: SearchOptions,
        target_lang: str | None,
        batch_size: int,
        max_src_pieces: int | None = None,
    ):
        check_target_lang(vocab, target_lang)
        self.model, self.vocab, self.opts = model, vocab, opts
        self.target_lang, self.batch_size, self.max_src_pieces = target_lang, batch_size, max_src_pieces

    @classmethod
    def load(
        cls,
        model_file: str | Path,
        spm_file: str | Path,
        decode_cfg: Any,
        target_lang: str | None = None,
        batch_size: int = 64,
        max_src_pieces: int | None = None,
    ) -> Translator:
        vocab = Vocabulary(spm_file)  # first: a damaged spm.model is named as such, not as "another vocabulary"
        model = load_decoding_model(model_file, spm_file, decode_cfg)
        opts = SearchOptions.from_config(decode_cfg)
        return cls(model, vocab, opts, target_lang, batch_size, max_src_pieces)

    def encode(self, lines: Sequence[str], numbers: Sequence[int]) -> list[list[int]]:
        """Source ids of each line, cut at ``max_src_pieces`` with a warning naming the line (its
        number in ``numbers``), so the search's cost is bounded whatever the input."""
        texts = [tag_source(line, self.target_lang) if self.target_lang else line for line in lines]
        ids = self.vocab.encode(texts)
        cap = self.max_src_pieces
        if cap:
            for i, seq in enumerate(ids):
                if len(seq) > cap:
                    # stderr, not logging: Hydra's log handler writes to stdout, the translations' stream
                    print(
                        f"warning: line {numbers[i]}: {len(seq)} source pieces, only the first {cap} are "
                        "translated (translate.max_src_pieces)",
                        file=sys.stderr,
                        flush=True,
                    )
                    ids[i] = seq[:cap]
        return ids

    def translate(self, lines: Sequence[str], first_line: int = 1) -> list[list[tuple[str, Hypothesis]]]:
        """n-best (text, hypothesis) per line; an empty line gives no hypotheses.  ``first_line`` is
        the input line number of ``lines[0]``, for warnings."""
        todo = [i for i, line in enumerate(lines) if line.strip()]
        results: list[list[tuple[str, Hypothesis]]] = [[] for _ in lines]
        if todo:
            src = self.encode([lines[i] for i in todo], [first_line + i for i in todo])
            hyps = translate_ids(self.model, src, self.opts, self.batch_size)
            for i, nbest in zip(todo, hyps, strict=True):
                decoded = self.vocab.decode([h.tokens for h in nbest])
                results[i] = list(zip(decoded, nbest, strict=True))
        return results

    def format(self, results: Sequence[Sequence[tuple[str, Hypothesis]]], first_index: int = 0) -> str:
        """The output text: one line per input line, or ``i<TAB>score<TAB>text`` rows for n-best."""
        rows = []
        for i, nbest in enumerate(results, start=first_index):
            if self.opts.n_best == 1:
                rows.append(nbest[0][0] if nbest else "")
            elif not nbest:
                rows.append(f"{i}\t\t")
            else:
                rows.extend(f"{i}\t{hyp.score:.4f}\t{text}" for text, hyp in nbest)
        return "".join(row + "\n" for row in rows)

    def write(self, results: Sequence[Sequence[tuple[str, Hypothesis]]], out: TextIO) -> None:
        out.write(self.format(results))

    def interactive(self, lines: Iterable[str]) -> None:
        """Translate line by line as the user types (stdin is a terminal)."""
        for number, line in enumerate(lines):
            write_stdout(self.format(self.translate([clean_line(line.rstrip("\n"))], number + 1), number))

"""The translate command's core: raw text in, detokenized text out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from s2s.checkpoint import load_model_file
from s2s.data.augment import tag_source
from s2s.data.vocab import Vocabulary
from s2s.evaluation import translate_ids
from s2s.search import Hypothesis, SearchOptions


class Translator:
    """A loaded model with its vocabulary and decoding options."""

    def __init__(self, model: Any, vocab: Vocabulary, opts: SearchOptions, target_lang: str | None, batch_size: int):
        self.model, self.vocab, self.opts = model, vocab, opts
        self.target_lang, self.batch_size = target_lang, batch_size

    @classmethod
    def load(
        cls,
        model_file: str | Path,
        spm_file: str | Path,
        decode_cfg: Any,
        target_lang: str | None = None,
        batch_size: int = 64,
    ) -> Translator:
        model, _ = load_model_file(model_file, spm_file)
        return cls(model, Vocabulary(spm_file), SearchOptions.from_config(decode_cfg), target_lang, batch_size)

    def translate(self, lines: Sequence[str]) -> list[list[tuple[str, Hypothesis]]]:
        """n-best (text, hypothesis) per line; an empty line gives no hypotheses."""
        texts = [tag_source(line, self.target_lang) if self.target_lang else line for line in lines]
        todo = [i for i, line in enumerate(lines) if line.strip()]
        results: list[list[tuple[str, Hypothesis]]] = [[] for _ in lines]
        if todo:
            hyps = translate_ids(self.model, self.vocab.encode([texts[i] for i in todo]), self.opts, self.batch_size)
            for i, nbest in zip(todo, hyps, strict=True):
                decoded = self.vocab.decode([h.tokens for h in nbest])
                results[i] = list(zip(decoded, nbest, strict=True))
        return results

    def write(self, results: Sequence[Sequence[tuple[str, Hypothesis]]], out: TextIO) -> None:
        for i, nbest in enumerate(results):
            if self.opts.n_best == 1:
                out.write((nbest[0][0] if nbest else "") + "\n")
            elif not nbest:
                out.write(f"{i}\t\t\n")
            else:
                for text, hyp in nbest:
                    out.write(f"{i}\t{hyp.score:.4f}\t{text}\n")

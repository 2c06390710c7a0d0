"""Translate raw text with a trained model: python src/translate.py [decode=greedy] < input.txt

One sentence a line in, detokenized translations out, line for line (an empty line gives an empty
line).  With decode.n_best=N > 1 each input line gives N lines "i<TAB>score<TAB>translation".
When stdin is a terminal it translates interactively, line by line.
"""

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from s2s.cli import user_errors
from s2s.translation import Translator


@hydra.main(config_path="../conf", config_name="translate", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    t = cfg.translate
    translator = Translator.load(t.model, t.spm, cfg.decode, t.target_lang, t.batch_size)
    out = sys.stdout if t.output == "-" else open(t.output, "w", encoding="utf-8")  # noqa: SIM115
    try:
        if t.input == "-" and sys.stdin.isatty():
            print("Type a sentence and press Enter (Ctrl-D to quit).", file=sys.stderr)
            for line in sys.stdin:
                translator.write(translator.translate([line.rstrip("\n")]), out)
                out.flush()
            return
        source = sys.stdin if t.input == "-" else open(Path(t.input), encoding="utf-8")  # noqa: SIM115
        with source:
            lines = [line.rstrip("\n") for line in source]
        translator.write(translator.translate(lines), out)
    finally:
        if out is not sys.stdout:
            out.close()


if __name__ == "__main__":
    main()

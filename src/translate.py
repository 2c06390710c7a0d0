"""Translate raw text with a trained model: python src/translate.py [decode=greedy] < input.txt

One sentence a line in, detokenized translations out, line for line (an empty line gives an empty
line; only "\\n" ends a line, a lone "\\r" inside one becomes a space).  With decode.n_best=N > 1
each input line gives N lines "i<TAB>score<TAB>translation".  Lines longer than
translate.max_src_pieces pieces are cut there, with a warning.  When stdin is a terminal it
translates interactively, line by line.  The options, the input, the output folder and the
language tag are all checked before anything is written; an output file is replaced whole.
translate.model is a model file, a folder holding one (models/, or an MLflow Model folder), or an
MLflow Model URI: models:/<name>@<alias>, models:/<name>/<version>, runs:/<run id>/model.
"""

# isort: off
import s2s.common.interrupts  # noqa: F401 - first: Ctrl-C while importing the rest ends in one line
# isort: on
import sys
import tempfile

import hydra
from omegaconf import DictConfig

from s2s.common.cli import stage_main, user_errors
from s2s.common.numerics import apply_from_config
from s2s.common.options import validate
from s2s.inference.translator import Translator, check_output, is_model_uri, model_files, read_input, write_output


@hydra.main(config_path="../conf", config_name="translate", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    validate(cfg, "translate")
    apply_from_config(cfg)  # before the first tensor operation: it decides which kernels run
    t = cfg.translate
    interactive = t.input == "-" and sys.stdin is not None and sys.stdin.isatty()
    check_output(t.output)
    lines = None if interactive else read_input(
        t.input, sys.stdin.buffer if sys.stdin is not None else None, t.max_src_pieces
    )
    with tempfile.TemporaryDirectory(prefix="s2s-model-") as tmp:
        model = t.model
        if is_model_uri(model):  # an MLflow Model: downloaded, then read like any model folder
            from s2s.tracking.registry import download_model
            from s2s.tracking.store import tracking_uri

            model = download_model(model, tmp, tracking_uri(cfg.logger.get("tracking_uri")))
        model_file, spm_file = model_files(model, t.spm)
        translator = Translator.load(model_file, spm_file, cfg.decode, t.target_lang, t.batch_size, t.max_src_pieces)
    if interactive:
        print("Type a sentence and press Enter (Ctrl-D to quit).", file=sys.stderr)
        translator.interactive(sys.stdin)
        return
    write_output(t.output, translator.format(translator.translate(lines)))


if __name__ == "__main__":
    stage_main(main)

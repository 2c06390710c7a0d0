"""DVC stage `preprocess`: split, filter, augment, train SentencePiece, encode -> data/prepared/."""

# isort: off
import s2s.common.interrupts  # noqa: F401 - first: Ctrl-C while importing the rest ends in one line
# isort: on
import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from s2s.common.cli import stage_main, user_errors
from s2s.common.config_guard import record_params_file
from s2s.common.io import recover_dir, write_json_atomic
from s2s.common.options import validate
from s2s.data.download.sources import CorpusConfig
from s2s.data.preprocess.noise import NoiseConfig
from s2s.data.preprocess.prepare import PrepareOptions, prepare

log = logging.getLogger("preprocess")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    record_params_file()  # checked again before the outputs are published
    validate(cfg, "preprocess")
    recover_dir(cfg.paths.raw_dir)  # a download killed while publishing left data/raw aside
    d, p = cfg.data, cfg.preprocess
    opt = PrepareOptions(
        raw_dir=cfg.paths.raw_dir,
        out_dir=cfg.paths.prepared_dir,
        dataset=CorpusConfig.from_config(d),
        vocab_size=p.spm.vocab_size,
        model_type=p.spm.model_type,
        character_coverage=p.spm.character_coverage,
        input_sentence_size=p.spm.input_sentence_size,
        shuffle_input_sentence=p.spm.shuffle_input_sentence,
        max_train_pairs=d.get("max_train_pairs"),
        max_eval_pairs=d.get("max_eval_pairs"),
        max_words=p.filter.max_words,
        max_pieces=p.filter.max_pieces,
        max_eval_pieces=p.filter.max_eval_pieces,
        reverse=p.reverse,
        noise_copies=p.noise.copies,
        noise_level=p.noise.level,
        noise=NoiseConfig(p_drop=p.noise.p_drop, p_blank=p.noise.p_blank, shuffle_k=p.noise.shuffle_k),
        noise_replace_clean=p.noise.replace_clean,
        seed=cfg.seed,
    )
    stats = prepare(opt)
    write_json_atomic(Path(cfg.paths.reports_dir) / "preprocess.json", stats)
    log.info(
        "train pairs in %d, out %d; vocabulary %d",
        stats["train"]["pairs_in"],
        stats["train"]["pairs_out"],
        stats["vocab_size"],
    )


if __name__ == "__main__":
    stage_main(main)

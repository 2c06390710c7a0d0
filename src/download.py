"""DVC stage `download`: fetch the corpus (or its mirror), verify sha256, write data/raw/."""

import logging

import hydra
from omegaconf import DictConfig

from s2s.cli import user_errors
from s2s.data.corpus import download_corpus
from s2s.options import validate

log = logging.getLogger("download")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    validate(cfg, "download")
    d = cfg.data
    counts = download_corpus(
        d.source_url,
        d.mirror,
        dict(d.files),
        cfg.paths.raw_dir,
        list(d.splits.values()),
        (d.src_lang, d.tgt_lang),
        d.timeout_s,
    )
    for split, n in counts.items():
        log.info("%s: %d pairs", split, n)


if __name__ == "__main__":
    main()

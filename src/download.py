"""DVC stage `download`: fetch every file the data config reads (or its mirror), verify sha256, write data/raw/."""

# isort: off
import s2s.common.interrupts  # noqa: F401 - first: Ctrl-C while importing the rest ends in one line
# isort: on
import logging

import hydra
from omegaconf import DictConfig

from s2s.common.cli import stage_main, user_errors
from s2s.common.config_guard import record_params_file
from s2s.common.options import validate
from s2s.data.download.corpus import download_dataset
from s2s.data.download.sources import CorpusConfig

log = logging.getLogger("download")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    record_params_file()  # checked again before the outputs are published
    validate(cfg, "download")
    dataset = CorpusConfig.from_config(cfg.data)
    fetched = download_dataset(dataset, cfg.paths.raw_dir)
    for source, files in fetched.items():
        log.info("%s: %d files", source, len(files))


if __name__ == "__main__":
    stage_main(main)

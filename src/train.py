"""DVC stage `train` (also a plain Hydra app): python src/train.py model=bigru_attn trainer.devices=2"""

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, open_dict

from s2s.cli import user_errors
from s2s.options import validate
from s2s.training import run_training

log = logging.getLogger("train")


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    validate(cfg, "train")
    hc = HydraConfig.get()
    if hc.mode == RunMode.MULTIRUN:
        # each sweep job keeps its checkpoints and model in its own output folder
        with open_dict(cfg):
            cfg.paths.checkpoint_dir = f"{hc.runtime.output_dir}/checkpoints"
            cfg.paths.model_dir = f"{hc.runtime.output_dir}/models"
            cfg.paths.reports_dir = f"{hc.runtime.output_dir}/reports"
    summary = run_training(cfg)
    if summary:
        log.info(
            "model written to %s/model.pt (val BLEU %s, MLflow run %s)",
            cfg.paths.model_dir,
            summary.get("val_bleu"),
            summary.get("run_id"),
        )


if __name__ == "__main__":
    main()

"""DVC stage `evaluate` (also a plain Hydra app): python src/evaluate.py decode=greedy

Decodes every test set, scores it with sacreBLEU, writes reports/ and logs to MLflow
(:mod:`s2s.evaluation.run`). Exit codes: 0 evaluated; 2 a user error (one line `error: ...`).
"""

# isort: off
import s2s.common.interrupts  # noqa: F401 - first: Ctrl-C while importing the rest ends in one line
# isort: on
import hydra
from omegaconf import DictConfig

from s2s.common.cli import stage_main, user_errors
from s2s.common.config_guard import record_params_file
from s2s.common.numerics import apply_from_config
from s2s.common.options import validate
from s2s.evaluation.run import run_evaluation


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@user_errors
def main(cfg: DictConfig) -> None:
    record_params_file()  # checked again before the reports are published
    validate(cfg, "evaluate")  # every option, before any file is read
    apply_from_config(cfg)  # before the first tensor operation: it decides which kernels run
    run_evaluation(cfg)


if __name__ == "__main__":
    stage_main(main)

"""Training metrics and learning curves for DVC, written by DVCLive's Lightning logger.

DVCLive writes ``<dir>/metrics.json`` (the train stage's metrics in ``dvc exp show``) and one TSV
per logged metric under ``<dir>/plots/metrics/`` (``dvc plots show``); dvc.yaml declares both,
so DVCLive is told not to edit dvc.yaml or save experiments itself. Every point Lightning logs
(``trainer.log_every_n_steps``) becomes a point of the curve, whatever the run's length.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from dvclive import Live
from dvclive.lightning import DVCLiveLogger
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.callbacks import Callback

from s2s.common.io import atomic_path, write_text_atomic

log = logging.getLogger(__name__)


class KillSafeLive(Live):
    """DVCLive's ``Live`` whose summary (``metrics.json``) and ``params.yaml`` are replaced whole
    (a temporary file renamed into place): a kill while writing leaves the previous file, never a
    truncated one (DVCLive opens them with ``"w"`` and writes in place)."""

    def make_summary(self) -> None:
        from dvclive.plots import NumpyEncoder

        if self._step is not None:
            self.summary["step"] = self.step
        text = json.dumps(self.summary, indent=4, cls=NumpyEncoder) + "\n"  # fails before any write
        write_text_atomic(self.metrics_file, text)

    def _dump_params(self) -> None:
        from dvclive.error import InvalidParameterTypeError
        from dvclive.serialize import dump_yaml
        from ruamel.yaml.representer import RepresenterError

        try:
            with atomic_path(self.params_file) as tmp:
                dump_yaml(self._params, str(tmp))
        except RepresenterError as exc:
            raise InvalidParameterTypeError(exc.args[0]) from exc


class KillSafeDVCLiveLogger(DVCLiveLogger):
    """DVCLive's Lightning logger on :class:`KillSafeLive`; on resume, the folder a kill left is
    repaired first (:func:`repair`) so the rerun of the same command continues its curves."""

    @property
    @rank_zero_experiment
    def experiment(self) -> Live:
        if self._experiment is None:
            if self._kwargs.get("resume"):
                repair(Path(self._kwargs["dir"]))
            self._experiment = KillSafeLive(**self._kwargs)
        return self._experiment


def make_logger(out_dir: str | Path, resume: bool = False) -> DVCLiveLogger:
    """DVCLive logger writing into ``out_dir`` (kept across a resumed run, cleared otherwise)."""
    return KillSafeDVCLiveLogger(dir=str(out_dir), resume=resume, save_dvc_exp=False, dvcyaml=None, report=None)


def repair(folder: Path) -> None:
    """Make a DVCLive folder that a kill interrupted readable again, keeping every complete point.

    A curve's half-written last row (no line end) is cut off; a ``params.yaml`` that does not
    parse is removed (the stage logs its parameters again); a ``metrics.json`` that does not parse,
    or is missing while curves exist, is rebuilt from the curves' last rows (the summary DVCLive
    resumes from: the latest value of each metric and the last step).
    """
    if not folder.is_dir():
        return
    curves = sorted((folder / "plots" / "metrics").rglob("*.tsv"))
    for tsv in curves:
        data = tsv.read_bytes()
        if data and not data.endswith(b"\n"):
            log.warning("%s: dropping a half-written last row (interrupted run)", tsv)
            with atomic_path(tsv) as tmp:
                tmp.write_bytes(data[: data.rfind(b"\n") + 1])
    params = folder / "params.yaml"
    if params.is_file():
        from dvclive.serialize import load_yaml

        try:
            load_yaml(str(params))
        except Exception:  # noqa: BLE001 - any parse failure: a half-written file
            log.warning("%s: unreadable (interrupted run), removed; the parameters are logged again", params)
            params.unlink()
    summary = folder / "metrics.json"
    try:
        if isinstance(json.loads(summary.read_text(encoding="utf-8")), dict):
            return
    except (OSError, ValueError):
        pass
    if not curves and not summary.exists():
        return
    rebuilt = summary_from_curves(folder)
    log.warning("%s: unreadable or missing (interrupted run), rebuilt from the curves", summary)
    write_text_atomic(summary, json.dumps(rebuilt, indent=4) + "\n")


def summary_from_curves(folder: Path) -> dict[str, Any]:
    """DVCLive's summary as its curves say: ``{"val": {"bleu": <last value>}, ..., "step": <last step>}``."""
    import csv

    root = folder / "plots" / "metrics"
    summary: dict[str, Any] = {}
    last_step = None
    for tsv in sorted(root.rglob("*.tsv")):
        rows = list(csv.DictReader(tsv.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
        if not rows:
            continue
        name = tsv.stem
        row = rows[-1]
        try:
            value = float(row[name])
            step = int(row["step"])
        except (KeyError, TypeError, ValueError):
            continue
        node = summary
        for part in tsv.relative_to(root).parent.parts:
            node = node.setdefault(part, {})
        node[name] = int(value) if value.is_integer() and "." not in row[name] else value
        last_step = step if last_step is None else max(last_step, step)
    if last_step is not None:
        summary["step"] = last_step
    return summary


class TrainingSummary(Callback):
    """Adds the figures that compare trainings to DVCLive's summary (the train stage's metrics file).

    ``best_val_bleu`` and ``best_step`` (the step of the best validation), ``total_steps``,
    ``epochs`` and ``train_tokens_per_sec`` (mean of the logged throughput over the run).
    """

    def __init__(self) -> None:
        self.best_bleu: float | None = None
        self.best_step: int | None = None
        self.tps_sum, self.tps_count = 0.0, 0

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        value = trainer.callback_metrics.get("tokens_per_sec")
        if value is not None:
            self.tps_sum += float(value)
            self.tps_count += 1

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get("val_bleu")
        if trainer.sanity_checking or value is None:
            return
        if self.best_bleu is None or float(value) > self.best_bleu:
            self.best_bleu, self.best_step = float(value), trainer.global_step

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        summary = {
            "best_val_bleu": self.best_bleu,
            "best_step": self.best_step,
            "total_steps": trainer.global_step,
            "epochs": trainer.current_epoch,
            "train_tokens_per_sec": round(self.tps_sum / self.tps_count, 1) if self.tps_count else None,
        }
        for logger in trainer.loggers:
            if isinstance(logger, DVCLiveLogger):
                logger.experiment.summary.update({k: v for k, v in summary.items() if v is not None})
                logger.experiment.make_summary()

    def state_dict(self) -> dict[str, Any]:
        return {"best_bleu": self.best_bleu, "best_step": self.best_step, "tps": [self.tps_sum, self.tps_count]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_bleu, self.best_step = state.get("best_bleu"), state.get("best_step")
        self.tps_sum, self.tps_count = state.get("tps", [0.0, 0])

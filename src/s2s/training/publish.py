"""What the train stage publishes, and when: all of it, and only once it may.

The stage's outputs, ``models/`` (model.pt, run.json), ``reports/train_run.json`` (the MLflow run)
and ``reports/dvclive/`` (DVC's metrics and curves), are ``persist: true`` in dvc.yaml: DVC leaves
them in place while the stage runs, and the stage replaces them itself, at the end. Until then it
writes elsewhere: DVCLive logs into the run's checkpoint folder (:func:`curves_dir`, kept with its
checkpoints across a resume and moved aside with them), the model and the link into temporary
siblings of the outputs. A stage that fails, is killed or refuses to publish (``params.yaml``
changed under it: :func:`s2s.common.config_guard.check_params_file`) leaves every published file
as it was.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from s2s.common.config_guard import check_params_file
from s2s.common.io import atomic_path

CURVES = "dvclive"  # the run's DVCLive folder, inside its checkpoint folder


def curves_dir(checkpoint_dir: str | Path) -> Path:
    """Where the run's DVCLive logger writes while it trains (published as ``reports/dvclive``)."""
    return Path(checkpoint_dir) / CURVES


@dataclass(frozen=True)
class Staged:
    """Where export writes: temporary siblings of ``models/`` and ``reports/train_run.json``."""

    model_dir: Path
    run_link: Path


@contextlib.contextmanager
def staged_outputs(model_dir: str | Path, reports_dir: str | Path, curves: Path | None) -> Iterator[Staged]:
    """Yield temporary paths for ``models/`` and ``reports/train_run.json``; on success, copy the
    run's ``curves`` (None: leave ``reports/dvclive`` alone), check ``params.yaml`` once more and
    rename the three into place (the model first, the link last).

    Any exception, the refusal included, removes the temporary files and leaves the published ones
    untouched. A kill between two renames leaves some outputs new and some old; DVC then has not
    recorded the stage, and rerunning the same command exports the finished run again and
    publishes all of them.
    """
    reports = Path(reports_dir)
    with contextlib.ExitStack() as stack:
        link = stack.enter_context(atomic_path(reports / "train_run.json"))
        live = stack.enter_context(atomic_path(reports / "dvclive", is_dir=True)) if curves is not None else None
        models = stack.enter_context(atomic_path(model_dir, is_dir=True))
        yield Staged(models, link)
        if live is not None and curves is not None and curves.is_dir():
            shutil.copytree(curves, live, dirs_exist_ok=True)
        check_params_file()  # the last moment before anything is replaced

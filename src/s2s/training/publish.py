"""What the train stage publishes, and when: all of it, and only once it may.

The stage's outputs, ``models/`` (model.pt, spm.model, run.json), ``reports/train_run.json`` (the MLflow run)
and ``reports/dvclive/`` (DVC's metrics and curves), are ``persist: true`` in dvc.yaml: DVC leaves
them in place while the stage runs, and the stage replaces them itself, at the end. Until then it
writes elsewhere: DVCLive logs into the run's checkpoint folder (:func:`curves_dir`, kept with its
checkpoints across a resume and moved aside with them), the model and the link into temporary
siblings of the outputs. A stage that fails, is killed or refuses to publish (``params.yaml``
changed under it: :func:`s2s.common.config_guard.check_params_file`) leaves every published file
as it was.

``reports/dvclive`` is the stage's own folder and is replaced whole (a curve no longer logged does
not outlive its run). ``model.pt``, ``spm.model`` and ``run.json`` replace their namesakes one by one: a
``paths.model_dir`` of the user's keeps its other files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from s2s.common.config_guard import check_params_file
from s2s.common.io import atomic_path, recover_dir

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
    rename them into place (the model's files first, the link last).

    Any exception, the refusal included, removes the temporary files and leaves the published ones
    untouched. A kill between two renames leaves some outputs new and some old; DVC then has not
    recorded the stage, and rerunning the same command exports the finished run again and
    publishes all of them.
    """
    reports = Path(reports_dir)
    with contextlib.ExitStack() as stack:
        link = stack.enter_context(atomic_path(reports / "train_run.json"))
        live = stack.enter_context(atomic_path(reports / "dvclive", is_dir=True)) if curves is not None else None
        models = stack.enter_context(_files_into(Path(model_dir)))
        yield Staged(models, link)
        if live is not None and curves is not None and curves.is_dir():
            shutil.copytree(curves, live, dirs_exist_ok=True)
        check_params_file()  # the last moment before anything is replaced


@contextlib.contextmanager
def _files_into(folder: Path) -> Iterator[Path]:
    """A temporary folder beside ``folder`` whose files replace their namesakes in ``folder`` on
    success, one rename each, in name order; removed on failure. A killed run's is removed by the
    next run (:func:`s2s.common.io.recover_dir`: the process id is in its name)."""
    recover_dir(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.{os.getpid()}.", suffix=".tmp", dir=folder.parent))
    try:
        yield tmp
        folder.mkdir(exist_ok=True)
        for path in sorted(tmp.iterdir()):
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

"""Where a compared run's files are read from: a run folder, a DVC experiment (or any Git
revision) or an MLflow run, each behind one interface, :class:`RunFiles` (``open_run`` picks one
from a ``--system`` spec). What the files mean is :mod:`s2s.evaluation.compare.runs`' business.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from s2s.common.io import InputError

# the evaluate stage's files a run holds (project-relative paths), read by
# s2s.evaluation.compare.runs.test_sets_from_reports
EVAL_METRICS = "reports/eval/metrics.json"
EVAL_TRANSLATIONS = "reports/eval/translations/{}.tsv"
EVAL_REPORT = "reports/eval/report.json"  # signatures and the run's provenance (s2s.common.numerics)
OLD_TRANSLATIONS = "reports/translations.tsv"  # before reports/eval/: one file, one test set
OLD_METRICS = "reports/metrics.json"


class RunFiles(Protocol):
    """Read access to one run's project-relative files (``reports/eval/metrics.json``, ...)."""

    label: str

    @property
    def identity(self) -> str:
        """What makes two specs the same run (a resolved folder, a commit, a run id)."""

    def read_text(self, relpath: str) -> str | None:
        """The file's text, or None when the run has no such file."""


@dataclass
class FolderRun:
    """A run folder: a project checkout or a Hydra multirun job folder holding ``reports/``.

    Its ``reports/`` or ``models/`` subfolder is accepted too (the run is the folder above).
    """

    root: Path
    label: str = ""

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise InputError(
                f"{self.root}: folder not found (a run folder; use dvc:NAME for a DVC experiment, "
                "mlflow:RUN_ID for an MLflow run)"
            )
        self.label = self.label or str(self.root)
        self.base = next(
            (b for b in (self.root, self.root.parent) for f in (EVAL_METRICS, OLD_TRANSLATIONS) if (b / f).is_file()),
            self.root,
        )

    @property
    def identity(self) -> str:
        return str(self.base.resolve())

    def read_text(self, relpath: str) -> str | None:
        path = self.base / relpath
        return path.read_text(encoding="utf-8") if path.is_file() else None


@dataclass
class DvcExperimentRun:
    """A DVC experiment (or any Git revision) of the project: its committed reports.

    ``reports/eval/`` is an uncached DVC output, so it is in the experiment's Git commit; DVC
    resolves experiment names to that commit.
    """

    name: str
    repo: str = "."
    label: str = ""

    def __post_init__(self) -> None:
        import dvc.api
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
        from dvc.scm import resolve_rev

        self.label = self.label or f"dvc:{self.name}"
        try:
            with Repo(self.repo) as repo:
                self.commit = resolve_rev(repo.scm, self.name)
        except DvcException as err:
            raise InputError(f"dvc:{self.name}: no such DVC experiment or Git revision in {self.repo} ({err})") from err
        self._fs = dvc.api.DVCFileSystem(self.repo, rev=self.commit)

    @property
    def identity(self) -> str:
        return f"dvc:{Path(self.repo).resolve()}@{self.commit}"

    def read_text(self, relpath: str) -> str | None:
        if not self._fs.isfile(relpath):
            return None
        return self._fs.read_text(relpath, encoding="utf-8")


@dataclass
class MlflowRun:
    """An MLflow run: the evaluate stage logs ``reports/eval/*`` under the artifact path ``eval/``,
    in a child run nested under the training run (or in the given run itself)."""

    run_id: str
    tracking_uri: str
    download_dir: Path
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or f"mlflow:{self.run_id}"

    @property
    def identity(self) -> str:
        return f"mlflow:{self.tracking_uri}#{self.run_id}"

    def read_text(self, relpath: str) -> str | None:
        from s2s.tracking.registry import download_artifact

        # reports/eval/x -> eval/x; the old layout logged reports/<file> as eval/<file>
        new_layout = relpath.startswith("reports/eval/")
        artifact = relpath.removeprefix("reports/") if new_layout else "eval/" + Path(relpath).name
        path = download_artifact(self.tracking_uri, self.run_id, artifact, self.download_dir / self.run_id)
        return path.read_text(encoding="utf-8") if path is not None else None


def open_run(spec: str, tracking_uri: str, download_dir: Path, repo: str = ".") -> RunFiles:
    """``dvc:NAME`` (DVC experiment or Git revision), ``mlflow:RUN_ID``, or a folder path."""
    if spec.startswith("dvc:"):
        return DvcExperimentRun(spec[4:], repo)
    if spec.startswith("mlflow:"):
        return MlflowRun(spec[7:], tracking_uri, download_dir)
    return FolderRun(Path(spec))

"""What DVC's tables and plots show: metrics files of numbers only, each once; plots that load."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from conftest import ROOT, copy_project
from helpers.json_leaves import is_number, leaves


def _declared_metrics() -> list[str]:
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    files = [next(iter(m)) if isinstance(m, dict) else m for m in pipeline.get("metrics", [])]
    for stage in pipeline["stages"].values():
        files += [next(iter(m)) if isinstance(m, dict) else m for m in stage.get("metrics", [])]
    return files


def test_declared_metrics_files_hold_numbers_only() -> None:
    files = _declared_metrics()
    assert "reports/preprocess.json" not in files and "reports/metrics.json" in files
    for name in files:
        found = leaves(json.loads((ROOT / name).read_text()))
        assert found and all(is_number(v) for v in found.values()), (name, found)


def test_plots_load_on_a_fresh_project_and_compare_adds_its_chart(tmp_path: Path) -> None:
    """`dvc plots show` reports no failure before compare.py has run; after it, the compare chart is there."""
    project = copy_project(tmp_path / "p", skip=("benchmarks/",))
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}

    def plots() -> dict:
        out = subprocess.run(["dvc", "plots", "show", "--json"], cwd=project, env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    shown = plots()
    assert not shown.get("errors"), shown.get("errors")
    assert not any(k.startswith("compare") for k in shown["data"])

    from s2s.evaluation.compare.report import write_report

    report = json.loads((ROOT / "docs/results/seeds-1epoch/compare.json").read_text())
    write_report(report, project / "reports/compare")
    shown = plots()
    assert not shown.get("errors"), shown.get("errors")
    assert any(k.startswith("compare") for k in shown["data"])

"""s2s.tracking.dvclive: the training curves' files survive a kill at any moment (issue 35, item 9).

A kill is simulated by the file it leaves (empty, truncated, half a line) or by a write that fails
half way, never by timing a real signal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from s2s.tracking import dvclive as dvc_report


def _curves(folder: Path) -> None:
    """What a run that logged two validations and a few training steps leaves."""
    metrics = folder / "plots" / "metrics"
    (metrics / "val").mkdir(parents=True)
    (metrics / "train" / "step").mkdir(parents=True)
    (metrics / "val" / "bleu.tsv").write_text("step\tbleu\n19\t1.5\n38\t2.25\n")
    (metrics / "train" / "step" / "loss.tsv").write_text("step\tloss\n5\t6.0\n10\t5.5\n40\t4.75\n")


@pytest.mark.parametrize("damage", ["empty", "truncated", "missing"])
def test_a_resumed_run_rebuilds_a_summary_a_kill_left_unreadable(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "dvclive"
    _curves(folder)
    summary = '{\n    "val": {\n        "bleu": 2.25\n    },\n    "step": 40\n}\n'
    if damage != "missing":
        (folder / "metrics.json").write_text("" if damage == "empty" else summary[: len(summary) // 2])
    live = dvc_report.make_logger(folder, resume=True).experiment  # DVCLive reads its summary here
    assert live.summary["val"]["bleu"] == 2.25 and live.summary["train"]["step"]["loss"] == 4.75
    assert live.step == 41  # continues after the last logged step
    assert json.loads((folder / "metrics.json").read_text())["step"] == 40


def test_a_half_written_curve_line_is_dropped_on_resume(tmp_path: Path) -> None:
    folder = tmp_path / "dvclive"
    _curves(folder)
    bleu = folder / "plots" / "metrics" / "val" / "bleu.tsv"
    bleu.write_text(bleu.read_text() + "57\t3.")  # killed in the middle of a row
    (folder / "metrics.json").write_text(json.dumps({"val": {"bleu": 2.25}, "step": 40}))
    logger = dvc_report.make_logger(folder, resume=True)
    logger.log_metrics({"val/bleu": 3.5}, step=57)
    assert bleu.read_text() == "step\tbleu\n19\t1.5\n38\t2.25\n57\t3.5\n"


def test_an_unreadable_params_file_does_not_block_the_resume(tmp_path: Path) -> None:
    folder = tmp_path / "dvclive"
    _curves(folder)
    (folder / "metrics.json").write_text(json.dumps({"step": 40}))
    (folder / "params.yaml").write_text("provenance: {cpu: [unterminated\n")
    logger = dvc_report.make_logger(folder, resume=True)
    logger.log_hyperparams({"provenance": {"cpu": "x"}})
    assert "cpu: x" in (folder / "params.yaml").read_text()


def test_the_summary_is_replaced_whole_or_not_at_all(tmp_path: Path) -> None:
    folder = tmp_path / "dvclive"
    logger = dvc_report.make_logger(folder)
    live = logger.experiment
    live.summary["best_val_bleu"] = 1.0
    live.make_summary()
    before = (folder / "metrics.json").read_text()
    live.summary["best_val_bleu"] = object()  # fails half way through the write, like a kill
    with pytest.raises(TypeError):
        live.make_summary()
    assert (folder / "metrics.json").read_text() == before
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["metrics.json"]  # no temporary left

"""The translate command and the model file's safety checks, on a tiny trained model."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from s2s.checkpoint import load_model_file
from s2s.io import InputError

from conftest import ROOT, copy_tiny, run_script

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    base = tmp_path_factory.mktemp("translate")
    paths = copy_tiny(tiny_data, base)
    run_script("train", *paths, "logger=none", "trainer.max_epochs=2")
    return base, paths


def translate(paths: list[str], text: str, *overrides: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "src/translate.py", *paths, *overrides],
        input=text,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_lines_in_lines_out(trained: tuple[Path, list[str]]) -> None:
    _, paths = trained
    text = "A man is riding a bike.\n\nTwo dogs play in the snow.\n" + "a big dog " * 60 + "\n"
    for decode in ("greedy", "beam"):
        result = translate(paths, text, f"decode={decode}")
        assert result.returncode == 0, result.stderr[-2000:]
        lines = result.stdout.split("\n")[:-1]
        assert len(lines) == 4, result.stdout
        assert lines[1] == "", "an empty line gives an empty line"
        assert "▁" not in result.stdout, "output must be detokenized"


def test_nbest_output(trained: tuple[Path, list[str]]) -> None:
    _, paths = trained
    result = translate(paths, "A man is riding a bike.\nA woman sings.\n", "decode.n_best=3")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert [r[0] for r in rows] == ["0", "0", "0", "1", "1", "1"]
    scores = [float(r[1]) for r in rows[:3]]
    assert scores == sorted(scores, reverse=True)


def test_model_file_checks(trained: tuple[Path, list[str]], tmp_path: Path) -> None:
    base, _ = trained
    model_file, spm = base / "models/model.pt", base / "prepared/spm.model"
    model, _ = load_model_file(model_file, spm)
    # another vocabulary
    other = tmp_path / "other.model"
    shutil.copy(spm, other)
    with open(other, "ab") as fh:
        fh.write(b"\0")
    with pytest.raises(InputError, match="another SentencePiece vocabulary"):
        load_model_file(model_file, other)
    # weights that do not fit the config: a clear list instead of a shape traceback
    payload = torch.load(model_file, weights_only=True)
    payload["model_config"]["decoder"]["hidden_size"] = 48
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(InputError, match="weights do not match the model config"):
        load_model_file(broken)
    # not a model file at all
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="not a readable model file"):
        load_model_file(junk)


def test_evaluate_with_a_mismatched_model_names_it(trained: tuple[Path, list[str]], tmp_path: Path) -> None:
    base, paths = trained
    payload = torch.load(base / "models/model.pt", weights_only=True)
    payload["spm_sha256"] = "0" * 64
    (tmp_path / "models").mkdir()
    torch.save(payload, tmp_path / "models/model.pt")
    result = run_script("evaluate", *paths, f"paths.model_dir={tmp_path}/models", "logger=none", check=False)
    assert result.returncode == 2
    assert "another SentencePiece vocabulary" in result.stderr and "Traceback" not in result.stderr


def test_exported_model_reproduces_the_training_validation(trained: tuple[Path, list[str]]) -> None:
    """The model file written by training, loaded by the evaluate stage, gives the validation BLEU
    (and the very hypotheses) that training computed for it."""
    import json

    base, paths = trained
    run = json.loads((base / "models/run.json").read_text())
    reports = base / "reports_valid"
    run_script("evaluate", *paths, "evaluate.split=valid", "decode=greedy", "logger=none",
               f"paths.reports_dir={reports}", "evaluate.robustness_levels=[]", "evaluate.heatmaps=0")
    metrics = json.loads((reports / "metrics.json").read_text())
    assert metrics["split"] == "val"
    assert metrics["bleu"] == pytest.approx(run["val_bleu"], abs=0.005)
    # and the same hypotheses as a validation pass with the exported weights
    run_script("train", *paths, "train.validate_only=true", f"train.init_from={base}/models/model.pt",
               f"paths.reports_dir={reports}", "logger=none")
    validation = json.loads((reports / "validation.json").read_text())
    import csv

    with open(reports / "eval/translations/val.tsv", encoding="utf-8", newline="") as fh:
        hyps = [row["hypothesis"] for row in csv.DictReader(fh, delimiter="\t")]
    assert hyps == validation["hypotheses"]

"""The translate command and the model file's safety checks, on a tiny trained model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from s2s.common.io import InputError
from s2s.data.vocab import Vocabulary
from s2s.inference.translator import check_target_lang, language_tags
from s2s.models.model_file import load_model_file

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
    run_script(
        "evaluate",
        *paths,
        "evaluate.split=valid",
        "decode=greedy",
        "logger=none",
        f"paths.reports_dir={reports}",
        "evaluate.robustness_levels=[]",
        "evaluate.heatmaps=0",
    )
    metrics = json.loads((reports / "metrics.json").read_text())
    assert json.loads((reports / "eval/report.json").read_text())["split"] == "val"
    assert metrics["bleu"] == pytest.approx(run["val_bleu"], abs=0.005)
    # and the same hypotheses as a validation pass with the exported weights
    run_script(
        "train",
        *paths,
        "train.validate_only=true",
        f"train.init_from={base}/models/model.pt",
        f"paths.reports_dir={reports}",
        "logger=none",
    )
    validation = json.loads((reports / "validation.json").read_text())
    import csv

    with open(reports / "eval/translations/val.tsv", encoding="utf-8", newline="") as fh:
        hyps = [row["hypothesis"] for row in csv.DictReader(fh, delimiter="\t")]
    assert hyps == validation["hypotheses"]


# --- bad requests: one line, exit 2, and the output untouched -------------------------------------


def run_translate(
    paths: list[str],
    *overrides: str,
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = subprocess.PIPE,
    shell_prefix: str = "",
) -> subprocess.CompletedProcess:
    env = {**os.environ}
    env.pop("HYDRA_FULL_ERROR", None)
    cmd = [sys.executable, "src/translate.py", *paths, *overrides]
    if shell_prefix:  # e.g. "exec <&-": run through a shell that closes stdin first
        cmd = ["sh", "-c", f'{shell_prefix} "$@"', "sh", *cmd]
    return subprocess.run(
        cmd, cwd=ROOT, env=env, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=300
    )


def assert_one_error_line(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr[-3000:]
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "case",
    [
        "missing-input",
        "binary-input",
        "nul-input",
        "input-folder",
        "missing-output-folder",
        "beam-0",
        "n_best-10",
        "target-lang-fr",
    ],
)
def test_bad_request_is_one_line_and_leaves_the_output(
    trained: tuple[Path, list[str]], tmp_path: Path, case: str
) -> None:
    _, paths = trained
    good = tmp_path / "in.txt"
    good.write_text("A man is riding a bike.\n")
    binary = tmp_path / "binary.bin"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    nul = tmp_path / "nul.txt"
    nul.write_bytes(b"a dog\n\0\0\0\0\n")
    out = tmp_path / "out.txt"
    out.write_text("an earlier translation\n")
    overrides, words = {
        "missing-input": (
            [f"translate.input={tmp_path}/missing.txt"],
            ["translate.input=", "missing.txt", "not found"],
        ),
        "binary-input": ([f"translate.input={binary}"], [str(binary), "line 1", "invalid UTF-8"]),
        "nul-input": ([f"translate.input={nul}"], [str(nul), "line 2", "NUL"]),
        "input-folder": ([f"translate.input={tmp_path}"], ["translate.input=", "folder"]),
        "missing-output-folder": (
            [f"translate.input={good}", f"translate.output={tmp_path}/no/such/out.txt"],
            ["translate.output=", f"{tmp_path}/no/such", "does not exist"],
        ),
        "beam-0": ([f"translate.input={good}", "decode.beam_size=0"], ["decode.beam_size=0"]),
        "n_best-10": ([f"translate.input={good}", "decode.n_best=10"], ["decode.n_best=10"]),
        "target-lang-fr": (
            [f"translate.input={good}", "translate.target_lang=fr"],
            ["translate.target_lang=fr", "<2fr>", "without reversed pairs"],
        ),
    }[case]
    if not any(o.startswith("translate.output=") for o in overrides):
        overrides.append(f"translate.output={out}")
    assert_one_error_line(run_translate(paths, *overrides), *words)
    assert out.read_text() == "an earlier translation\n", "the output is not touched before validation"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["binary.bin", "in.txt", "nul.txt", "out.txt"]


def test_missing_input_creates_no_output(trained: tuple[Path, list[str]], tmp_path: Path) -> None:
    _, paths = trained
    result = run_translate(paths, f"translate.input={tmp_path}/missing.txt", f"translate.output={tmp_path}/new.txt")
    assert_one_error_line(result, "missing.txt")
    assert list(tmp_path.iterdir()) == []


def test_closed_stdin(trained: tuple[Path, list[str]]) -> None:
    _, paths = trained
    assert_one_error_line(run_translate(paths, shell_prefix="exec <&-;"), "standard input is closed")


@pytest.mark.parametrize("how", ["stdout", "option"])
def test_full_disk_output(trained: tuple[Path, list[str]], tmp_path: Path, how: str) -> None:
    _, paths = trained
    good = tmp_path / "in.txt"
    good.write_text("A man is riding a bike.\n" * 50)
    if how == "stdout":
        with open("/dev/full", "w") as full:
            result = run_translate(paths, f"translate.input={good}", stdout=full)
    else:
        result = run_translate(paths, f"translate.input={good}", "translate.output=/dev/full")
    assert_one_error_line(result, "translate.output=", "No space left on device")
    assert Path("/dev/full").is_char_device(), "a device output is written in place, never renamed over"


def test_output_file_replaced_whole(trained: tuple[Path, list[str]], tmp_path: Path) -> None:
    _, paths = trained
    good = tmp_path / "in.txt"
    good.write_text("A man is riding a bike.\nTwo dogs play in the snow.\n")
    out = tmp_path / "out.txt"
    out.write_text("an earlier translation\n" * 10)
    result = run_translate(paths, f"translate.input={good}", f"translate.output={out}", "decode=greedy")
    assert result.returncode == 0, result.stderr[-2000:]
    expected = translate(paths, good.read_text(), "decode=greedy").stdout
    assert out.read_text() == expected and len(expected.splitlines()) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_lone_carriage_return_keeps_lines_aligned(trained: tuple[Path, list[str]], tmp_path: Path) -> None:
    """A lone \\r inside a line is a space (reading a file in Python's text mode made it a line break:
    3 lines in, 4 out); \\r\\n is one line end."""
    _, paths = trained
    text = "A man\ris riding a bike.\r\nA woman sings.\nTwo dogs.\n"
    source = tmp_path / "cr.txt"
    source.write_bytes(text.encode())
    plain = translate(paths, "A man is riding a bike.\nA woman sings.\nTwo dogs.\n", "decode=greedy")
    from_file = translate(paths, "", "decode=greedy", f"translate.input={source}")
    from_stdin = translate(paths, text, "decode=greedy")
    for result in (from_file, from_stdin):
        assert result.returncode == 0, result.stderr[-2000:]
        assert len(result.stdout.split("\n")) == 4  # three lines and the final newline
        assert result.stdout == plain.stdout


def test_long_line_is_cut_with_a_warning(trained: tuple[Path, list[str]]) -> None:
    """A 100,000-character line is cut at translate.max_src_pieces: beam search finishes, and the
    warning names the line."""
    _, paths = trained
    words = "a man rides a big red bike down the street "
    long_line = (words * (100_000 // len(words) + 1))[:100_000]
    result = translate(paths, f"A woman sings.\n{long_line}\nTwo dogs.\n", "translate.max_src_pieces=64")
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.split("\n")) == 4
    warnings = [line for line in result.stderr.splitlines() if "translate.max_src_pieces" in line]
    assert len(warnings) == 1 and "line 2:" in warnings[0], result.stderr[-2000:]
    short = translate(paths, "A woman sings.\nTwo dogs.\n").stdout.split("\n")
    lines = result.stdout.split("\n")
    assert [lines[0], lines[2]] == short[:2], "the other lines are translated as usual"


# --- language tags --------------------------------------------------------------------------------


def test_a_model_without_tags_refuses_any_target_lang(trained: tuple[Path, list[str]]) -> None:
    base, _ = trained
    vocab = Vocabulary(base / "prepared/spm.model")
    assert language_tags(vocab) == []
    check_target_lang(vocab, None)
    with pytest.raises(InputError, match="translate.target_lang=de: .*without reversed pairs"):
        check_target_lang(vocab, "de")

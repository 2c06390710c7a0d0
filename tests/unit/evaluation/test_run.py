"""s2s.evaluation.run: an evaluation is named by its whole decode section, so one with other decoding
settings never overwrites the default's metrics in the training's MLflow run (issue 35, item 6)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from s2s.evaluation import run as evaluation

from conftest import compose_config

BASE = ["preset=tiny"]


def name(*overrides: str) -> str:
    return evaluation.evaluation_name(compose_config([*BASE, *overrides]))


def test_the_default_decoding_keeps_its_short_name() -> None:
    assert name() == "test/beam5"
    assert name("decode=greedy") == "test/greedy1"
    assert name("numerics=fast") == "test/beam5"  # fast numerics' own default (bf16 decoding)
    assert name("evaluate.split=valid") == "valid/beam5"
    assert name("decode.beam_size=2") == "test/beam2"  # the beam is in the readable part


@pytest.mark.parametrize("override", ["decode.batch_size=7", "decode.device=auto", "decode.n_best=1"])
def test_what_does_not_change_the_translations_does_not_rename(override: str) -> None:
    assert name(override) == "test/beam5"


CHANGED = [
    "decode.length_penalty=0.6",
    "decode.max_len_a=2.0",
    "decode.max_len_b=5",
    "decode.min_len=2",
    "decode.no_repeat_ngram_size=3",
    "decode.precision=bf16",
    "decode.compile=true",
]


def test_other_decoding_settings_get_a_name_of_their_own() -> None:
    names = [name(o) for o in CHANGED]
    assert len(set(names)) == len(CHANGED) and "test/beam5" not in names
    assert all(n.startswith("test/beam5-") for n in names)  # readable, then a short hash
    assert name(CHANGED[0]) == name(CHANGED[0])


def _evaluation(tmp_path: Path, overrides: list[str]) -> Any:
    reports = tmp_path / "reports"
    for folder in ("eval/translations", "eval/attention"):
        (reports / folder).mkdir(parents=True, exist_ok=True)
    cfg = compose_config([*BASE, f"paths.reports_dir={reports}", *overrides])
    return SimpleNamespace(
        cfg=cfg,
        opts=SimpleNamespace(beam_size=cfg.decode.beam_size),
        metrics={"bleu": 1.0},
        scores={},
        curve=[],
        report={"bleu_signature": "b", "chrf_signature": "c", "provenance": {}},
    )


def test_the_child_run_records_the_decode_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(evaluation.evaluation_runs, "log_evaluation", lambda *a, **kw: calls.append(kw))
    for overrides in ([], ["decode.length_penalty=0.6"]):
        ev = _evaluation(tmp_path, overrides)
        evaluation.log_to_mlflow(ev, tmp_path / "reports")
    default, other = calls
    assert default["decode_name"] == "test/beam5" and other["decode_name"] != default["decode_name"]
    assert other["params"]["decode.length_penalty"] == "0.6" and default["params"]["decode.length_penalty"] == "1.0"
    assert other["params"]["decode.beam_size"] == "5"


def test_a_params_file_changed_before_publishing_replaces_nothing(tmp_path: Path, monkeypatch) -> None:
    """Issue 35, item 11: checked right before the old set and summary are replaced (after the
    heatmaps, which take seconds), so a second `dvc exp run` meanwhile leaves them as they were."""
    from s2s.common import config_guard
    from s2s.common.io import InputError

    reports = tmp_path / "reports"
    old = {"metrics.json": b'{"bleu": 9.0}\n', "eval/metrics.json": b"{}\n", "eval/report.json": b"{}\n"}
    for name, data in old.items():
        (reports / name).parent.mkdir(parents=True, exist_ok=True)
        (reports / name).write_bytes(data)
    params = tmp_path / "params.yaml"
    params.write_text("decode: {beam_size: 2}\n")
    monkeypatch.setattr(config_guard, "_started_with", (params, "0" * 64))  # what it held at the start
    ev = SimpleNamespace(
        cfg=compose_config([*BASE, "evaluate.heatmaps=0"]),
        numbers={"test": {}},
        report={},
        sets={},
        hypotheses={},
        curve=[],
        metrics={"bleu": 1.0},
    )
    with pytest.raises(InputError, match="params.yaml changed while this stage ran"):
        evaluation.publish(ev, reports)
    left = {str(p.relative_to(reports)): p.read_bytes() for p in reports.rglob("*") if p.is_file()}
    assert left == old

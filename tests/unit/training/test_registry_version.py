"""What training registers (issue 34, items 2 and 13): smoke runs register no production version, a
version says what it is, and the validation key tells a tiny-preset run or the other direction
from the default run."""

from __future__ import annotations

from pathlib import Path

from s2s.tracking.registry import VALIDATION_KEY_TAG, validation_key
from s2s.training.export import validation_scoring, version_description

from conftest import compose_config

HEADER = "src_lang\ttgt_lang\tsource\treference\n"


def test_smoke_runs_register_no_production_version() -> None:
    """preset=tiny (the smoke runs, the README's sweep example, the sweep and DDP tests) registers
    nothing unless a name is given; the default run registers under the production name."""
    assert compose_config([]).logger.registered_model_name == "s2s-multi30k-bilstm_attn"
    assert compose_config(["preset=tiny"]).logger.registered_model_name is None
    named = compose_config(["preset=tiny", "logger.registered_model_name=s2s-smoke"])
    assert named.logger.registered_model_name == "s2s-smoke"


def test_a_tiny_run_and_the_other_direction_validate_on_other_sets(tmp_path: Path) -> None:
    """The keys the promotion compares: the default run's differs from a tiny-preset run's (100
    sentences), a reversed model's and a limit_val_batches run's."""
    rows = [f"en\tde\tsentence {i}\tSatz {i}\n" for i in range(200)]
    (tmp_path / "default.tsv").write_text(HEADER + "".join(rows))
    (tmp_path / "tiny.tsv").write_text(HEADER + "".join(rows[:100]))
    (tmp_path / "reverse.tsv").write_text(HEADER + "".join(rows) + "".join(
        f"de\ten\tSatz {i}\tsentence {i}\n" for i in range(200)))
    default_cfg = compose_config([])
    default = validation_key(tmp_path / "default.tsv", validation_scoring(default_cfg))
    assert validation_key(tmp_path / "tiny.tsv", validation_scoring(compose_config(["preset=tiny"]))) != default
    assert validation_key(tmp_path / "reverse.tsv", validation_scoring(default_cfg)) != default
    limited = compose_config(["+trainer.limit_val_batches=0.1"])
    assert validation_key(tmp_path / "default.tsv", validation_scoring(limited)) != default
    hidden = compose_config(["model.encoder.hidden_size=64"])  # another model on the same set: comparable
    assert validation_key(tmp_path / "default.tsv", validation_scoring(hidden)) == default


def test_a_version_says_what_it_is(tmp_path: Path) -> None:
    valid = tmp_path / "valid.tsv"
    valid.write_text(HEADER + "".join(f"en\tde\ts{i}\tr{i}\n" for i in range(3)))
    cfg = compose_config(["preprocess.reverse=true"])
    tags, description = version_description(cfg, valid, "k" * 64, 3.0999999046325684)
    assert tags["data"] == "multi30k" and tags["direction"] == "en<->de" and tags["preset"]
    assert tags["validation_sentences"] == "3" and len(tags["validation_digest"]) == 16
    assert tags[VALIDATION_KEY_TAG] == "k" * 64
    assert "3.10" in description and "3.0999" not in description and "en<->de" in description

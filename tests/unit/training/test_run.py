"""Training as its user sees it: one line per epoch, and every trainer.* key reaching the Trainer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conftest import SHORT_TRAINING, compose_config, copy_tiny, run_script, tiny_paths

# one override per keyword the train stage itself passes to pytorch_lightning.Trainer, with the
# value the Trainer must then receive (lists: the user's entries are added to the project's)
OVERRIDES: dict[str, tuple[str, Any]] = {
    "callbacks": (
        "+trainer.callbacks=[{_target_:pytorch_lightning.callbacks.LearningRateMonitor}]",
        "LearningRateMonitor",
    ),
    "plugins": (
        "+trainer.plugins=[{_target_:lightning_fabric.plugins.environments.LightningEnvironment}]",
        "LightningEnvironment",
    ),
    "logger": ("+trainer.logger=true", True),
    "default_root_dir": ("+trainer.default_root_dir=/tmp/elsewhere", "/tmp/elsewhere"),
    "use_distributed_sampler": ("+trainer.use_distributed_sampler=true", True),
    "enable_model_summary": ("+trainer.enable_model_summary=false", False),
    "enable_progress_bar": ("trainer.enable_progress_bar=true", True),
}


class _Captured(Exception):
    pass


def _trainer_kwargs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str) -> dict[str, Any]:
    """The keyword arguments run_training gives pytorch_lightning.Trainer (stopped right there)."""
    import s2s.training.run as training
    from s2s.common.options import validate

    base = [o for o in tiny_paths(tmp_path) if not o.startswith("hydra.")]
    cfg = compose_config([*base, "logger=none", *overrides])
    validate(cfg, "train")
    (tmp_path / "prepared").mkdir(exist_ok=True)
    (tmp_path / "prepared" / "spm.model").write_bytes(b"not read before the Trainer exists")
    seen: dict[str, Any] = {}

    def fake_trainer(**kwargs: Any) -> None:
        seen.update(kwargs)
        raise _Captured

    monkeypatch.setattr(training.pl, "Trainer", fake_trainer)
    with pytest.raises(_Captured):
        training.run_training(cfg)
    return seen


def _names(values: Any) -> Any:
    return [type(v).__name__ if not isinstance(v, str) else v for v in values] if isinstance(values, list) else values


def test_every_keyword_the_stage_passes_has_an_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A keyword added to the Trainer(...) call without an entry in OVERRIDES fails here."""
    from omegaconf import OmegaConf

    passed = set(_trainer_kwargs(tmp_path, monkeypatch))
    from_config = set(OmegaConf.to_container(compose_config(["preset=tiny"]).trainer))
    assert passed - from_config <= set(OVERRIDES), passed - from_config - set(OVERRIDES)


@pytest.mark.parametrize("key", sorted(OVERRIDES))
def test_trainer_keyword_can_be_overridden(key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override, expected = OVERRIDES[key]
    value = _names(_trainer_kwargs(tmp_path, monkeypatch, override)[key])
    if isinstance(value, list):
        assert expected in value
        assert len(value) > 1 or key != "callbacks"  # the project's callbacks are kept
    else:
        assert value == expected


def test_progress_bar_follows_the_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert _trainer_kwargs(tmp_path, monkeypatch)["enable_progress_bar"] is False
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert _trainer_kwargs(tmp_path, monkeypatch)["enable_progress_bar"] is True
    assert _trainer_kwargs(tmp_path, monkeypatch, "trainer.enable_progress_bar=false")["enable_progress_bar"] is False


EPOCH_LINE = re.compile(
    r"epoch (\d+)/2 step (\d+) train loss \d+\.\d{3} val loss \d+\.\d{3} BLEU \d+\.\d{2} "
    r"[\d,]+ tok/s elapsed \d+m\d\ds remaining \d+m\d\ds"
)


def test_training_prints_one_line_per_epoch_and_a_model_summary(tiny_data: Path, tmp_path: Path) -> None:
    """A real tiny training: one epoch line each epoch, rounded figures, and the model summary on request."""
    paths = copy_tiny(tiny_data, tmp_path)
    out = run_script("train", *paths, "logger=none", SHORT_TRAINING, "+trainer.enable_model_summary=true")
    text = out.stdout + out.stderr
    epochs = [m.groups() for m in EPOCH_LINE.finditer(text)]
    assert [e for e, _ in epochs] == ["1", "2"], text[-3000:]
    assert int(epochs[0][1]) < int(epochs[1][1])
    assert "Trainable params" in text  # Lightning's model summary
    assert "sync_dist" not in text
    assert not re.search(r"val BLEU \d+\.\d{3,}", text), "figures in log lines are rounded"

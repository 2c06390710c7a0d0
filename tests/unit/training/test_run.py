"""s2s.training.run: every trainer.* key reaches the Trainer, the stage's own keywords included."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import compose_config, tiny_paths

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




def test_the_model_summary_is_the_stages_own_unless_the_user_gives_one_or_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stage's summary (no "Total FLOPs: 0", issue 34 item 14) replaces Lightning's default one;
    ``+trainer.enable_model_summary=false`` still turns it off, and a user's own summary is kept alone."""
    from pytorch_lightning.callbacks import ModelSummary

    def summaries(kwargs: dict[str, Any]) -> list[str]:
        return [type(c).__name__ for c in kwargs["callbacks"] if isinstance(c, ModelSummary)]

    default = _trainer_kwargs(tmp_path, monkeypatch)
    assert summaries(default) == ["ParameterSummary"] and default["enable_model_summary"] is False
    assert summaries(_trainer_kwargs(tmp_path, monkeypatch, "+trainer.enable_model_summary=false")) == []
    own = "+trainer.callbacks=[{_target_:pytorch_lightning.callbacks.ModelSummary,max_depth:2}]"
    user = _trainer_kwargs(tmp_path, monkeypatch, own)
    assert summaries(user) == ["ModelSummary"] and user.get("enable_model_summary", True) is True


def test_the_best_checkpoint_keeps_lightnings_state_key(tmp_path: Path) -> None:
    """Each callback's state is restored by its key, the class name first: a subclass of our own in
    place of ModelCheckpoint would drop the best score of every checkpoint saved before (Lightning
    only warns). A moved folder is handled beside it (MovedFolder), not by another class."""
    from s2s.training.checkpoints import MovedFolder
    from s2s.training.run import make_callbacks

    best, made = make_callbacks(compose_config(["preset=tiny"]), tmp_path, "fp", "sha")
    assert best.state_key.startswith("ModelCheckpoint{'monitor': 'val_bleu'")
    assert any(isinstance(c, MovedFolder) for c in made)

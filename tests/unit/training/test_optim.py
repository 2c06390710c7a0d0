"""Optimiser and learning-rate schedule, without a Trainer; step by step as the task used them.

``tests/data/lr_schedules.json`` holds the learning rate of every optimizer step, and the
optimiser's settings, that :meth:`TranslationTask.configure_optimizers` gave for each
conf/optim/*.yaml before the schedule moved into :mod:`s2s.training.optim`
(``PYTHONPATH=src:tests python -m unit.training.test_optim`` rewrites it: only for a deliberate
change of a schedule).
"""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml

from s2s.training.optim import configure_optimizers, lr_at, plateau_warmup_lr

from conftest import CONF, TEST_DATA
from helpers.tiny_lightning import make_task

PINS = TEST_DATA / "lr_schedules.json"
OPTIM_CONF = CONF / "optim"
TOTAL_STEPS = 700  # the run's length the cosine decay is sized from
OPTIM_CONFIGS = sorted(p.stem for p in OPTIM_CONF.glob("*.yaml"))
EXTRA = {  # schedules no conf/optim file uses as it stands
    "constant_warmup3": {"name": "adam", "lr": 0.01, "scheduler": "constant", "warmup_steps": 3},
    "invsqrt_nowarmup": {"name": "adam", "lr": 0.01, "scheduler": "inverse_sqrt", "warmup_steps": 0},
    "cosine_nowarmup": {"name": "adamw", "lr": 0.01, "scheduler": "cosine", "min_lr": 0.001},
}


def optim_config(name: str) -> dict[str, Any]:
    return EXTRA[name] if name in EXTRA else yaml.safe_load((OPTIM_CONF / f"{name}.yaml").read_text())


def fake_trainer() -> SimpleNamespace:
    """What the task reads of its Trainer to size a cosine schedule: a run of TOTAL_STEPS steps."""
    return SimpleNamespace(max_steps=TOTAL_STEPS, estimated_stepping_batches=TOTAL_STEPS, callbacks=[])


def observe_task(name: str) -> dict[str, Any]:
    """The task's optimiser settings and the lr of each step 0..TOTAL_STEPS (exact, as float.hex)."""
    task = make_task(optim=optim_config(name))
    task._trainer = fake_trainer()
    conf = task.configure_optimizers()
    optimizer = conf["optimizer"]
    if "lr_scheduler" in conf:
        sched = conf["lr_scheduler"]
    else:  # the plateau schedule: the task steps it once an epoch, on val_bleu, itself
        assert task._plateau is not None and task._plateau.optimizer is optimizer
        sched = {"scheduler": task._plateau, "interval": "epoch", "monitor": "val_bleu"}
    group = optimizer.param_groups[0]
    out: dict[str, Any] = {
        "optimizer": type(optimizer).__name__,
        "betas": list(group["betas"]),
        "weight_decay": group["weight_decay"],
        "scheduler": type(sched["scheduler"]).__name__,
        "interval": sched["interval"],
        "monitor": sched.get("monitor"),
    }
    if isinstance(sched["scheduler"], torch.optim.lr_scheduler.ReduceLROnPlateau):
        plateau = sched["scheduler"]
        out.update(mode=plateau.mode, factor=plateau.factor, patience=plateau.patience, min_lrs=plateau.min_lrs)
        out["lrs"] = [group["lr"].hex()]
        return out
    lrs = []
    for _ in range(TOTAL_STEPS + 1):
        lrs.append(group["lr"].hex())
        optimizer.step()  # no gradients: parameters unchanged
        sched["scheduler"].step()
    out["lrs"] = lrs
    return out


CASES = OPTIM_CONFIGS + sorted(EXTRA)


@pytest.mark.parametrize("name", CASES)
def test_the_task_configures_the_recorded_optimiser_and_schedule(name: str) -> None:
    assert observe_task(name) == json.loads(PINS.read_text())[name]


@pytest.mark.parametrize("name", CASES)
def test_lr_at_equals_the_recorded_schedule_step_by_step(name: str) -> None:
    """The pure function, no Trainer, no optimiser: the very floats the task's scheduler produced."""
    cfg, recorded = optim_config(name), json.loads(PINS.read_text())[name]["lrs"]
    assert [lr_at(step, cfg, TOTAL_STEPS).hex() for step in range(len(recorded))] == recorded


def test_lr_at_by_hand() -> None:
    cosine = {"name": "adamw", "lr": 1.0, "scheduler": "cosine", "warmup_steps": 2, "min_lr": 0.2}
    # warmup 1/2, 2/2; then from 1.0 at step 2 down to 0.2 at step 6, halfway (0.6) at step 4
    assert [lr_at(s, cosine, total_steps=6) for s in (0, 1, 2, 4, 6, 9)] == pytest.approx([0.5, 1, 1, 0.6, 0.2, 0.2])
    invsqrt = {"name": "adam", "lr": 1.0, "scheduler": "inverse_sqrt", "warmup_steps": 4}
    assert [lr_at(s, invsqrt) for s in (0, 3, 15)] == pytest.approx([0.25, 1.0, 0.5])
    plateau = {"name": "adam", "lr": 0.5, "scheduler": "plateau", "warmup_steps": 4}
    assert [lr_at(s, plateau) for s in (0, 3, 4, 100)] == pytest.approx([0.125, 0.5, 0.5, 0.5])
    assert plateau_warmup_lr(4, plateau) is None and plateau_warmup_lr(1, invsqrt) is None


def test_unknown_names_are_refused() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ValueError, match="optim.scheduler='linear'"):
        configure_optimizers(params, {"name": "adam", "lr": 1.0, "scheduler": "linear"}, lambda: 1)
    with pytest.raises(ValueError, match="optim.name='sgd'"):
        configure_optimizers(params, {"name": "sgd", "lr": 1.0}, lambda: 1)


def test_the_run_length_is_asked_for_by_cosine_only() -> None:
    params = [torch.nn.Parameter(torch.zeros(1))]

    def no_length() -> int:
        raise AssertionError("asked for the run's length")

    for name in ("adam_invsqrt", "adam_plateau", "constant_warmup3"):
        configure_optimizers(params, optim_config(name), no_length)
    with pytest.raises(AssertionError):
        configure_optimizers(params, optim_config("adamw_cosine"), no_length)


def test_every_optim_config_is_recorded() -> None:
    assert set(OPTIM_CONFIGS) <= set(json.loads(PINS.read_text()))


if __name__ == "__main__":  # record (see the module docstring)
    PINS.write_text(json.dumps({name: observe_task(name) for name in CASES}) + "\n")
    sys.exit(0)

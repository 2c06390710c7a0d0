"""Optimiser and learning-rate schedule, without a Trainer; step by step as the task used them.

``tests/data/lr_schedules.json`` holds the learning rate of every optimizer step, and the
optimiser's settings, that :meth:`TranslationTask.configure_optimizers` gave for each
conf/optim/*.yaml before the schedule moved into :mod:`s2s.optim` (``python tests/test_optim.py``
rewrites it: only for a deliberate change of a schedule).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import yaml

from tiny_lightning import make_task

PINS = Path(__file__).parent / "data" / "lr_schedules.json"
CONF = Path(__file__).resolve().parents[1] / "conf" / "optim"
TOTAL_STEPS = 700  # the run's length the cosine decay is sized from
OPTIM_CONFIGS = sorted(p.stem for p in CONF.glob("*.yaml"))
EXTRA = {  # schedules no conf/optim file uses as it stands
    "constant_warmup3": {"name": "adam", "lr": 0.01, "scheduler": "constant", "warmup_steps": 3},
    "invsqrt_nowarmup": {"name": "adam", "lr": 0.01, "scheduler": "inverse_sqrt", "warmup_steps": 0},
    "cosine_nowarmup": {"name": "adamw", "lr": 0.01, "scheduler": "cosine", "min_lr": 0.001},
}


def optim_config(name: str) -> dict[str, Any]:
    return EXTRA[name] if name in EXTRA else yaml.safe_load((CONF / f"{name}.yaml").read_text())


def fake_trainer() -> SimpleNamespace:
    """What the task reads of its Trainer to size a cosine schedule: a run of TOTAL_STEPS steps."""
    return SimpleNamespace(max_steps=TOTAL_STEPS, estimated_stepping_batches=TOTAL_STEPS, callbacks=[])


def observe_task(name: str) -> dict[str, Any]:
    """The task's optimiser settings and the lr of each step 0..TOTAL_STEPS (exact, as float.hex)."""
    task = make_task(optim=optim_config(name))
    task._trainer = fake_trainer()
    conf = task.configure_optimizers()
    optimizer, sched = conf["optimizer"], conf["lr_scheduler"]
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


def test_every_optim_config_is_recorded() -> None:
    assert set(OPTIM_CONFIGS) <= set(json.loads(PINS.read_text()))


if __name__ == "__main__":  # record (see the module docstring)
    PINS.write_text(json.dumps({name: observe_task(name) for name in CASES}) + "\n")
    sys.exit(0)

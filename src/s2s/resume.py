"""Resume policy: which checkpoint (if any) a training run continues from.

A run resumes only from an unfinished run whose result-determining configuration (the
*fingerprint*) is the same and which ran on the same number of processes (the sampler's position
is counted per process, so another world size would replay or skip batches). Anything else starts
fresh, and a resumable checkpoint of another configuration is moved aside, never deleted.

Only the global-rank-0 process changes the checkpoint folder; the other ranks only read it, and
they reach the same decision from the same files whether they read before or after rank 0 moved
the old checkpoints aside (see :func:`decide`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from s2s.io import InputError, write_json_atomic

log = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
STAMP = "fingerprint.json"
CKPT_KEY = "s2s"  # our entry in every Lightning checkpoint: {"fingerprint": ..., "spm_sha256": ...}

# what decides the trained weights; everything else (paths, logger, progress bar, log interval,
# the corpus mirror and its timeout, decoding and evaluation settings) may change on resume
_TRAINER_KEYS = (
    "precision",
    "gradient_clip_val",
    "gradient_clip_algorithm",
    "accumulate_grad_batches",
    "max_epochs",
    "max_steps",
    "max_time",
    "val_check_interval",
    "check_val_every_n_epoch",
    "limit_train_batches",
    "limit_val_batches",
    "deterministic",
)
_IRRELEVANT = {
    "data": ("mirror", "timeout_s", "source_url"),
    "train": ("num_workers", "resume", "validate_only", "save_every_n_steps"),
}


def _plain(cfg: Any) -> Any:
    return OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg


def relevant_config(cfg: DictConfig) -> dict[str, Any]:
    """The part of the composed config that determines the training result (the world size aside)."""
    out: dict[str, Any] = {"seed": cfg.seed}
    for section in ("data", "preprocess", "model", "optim", "train"):
        values = dict(_plain(cfg[section]))
        for key in _IRRELEVANT.get(section, ()):
            values.pop(key, None)
        out[section] = values
    out["trainer"] = {k: _plain(cfg.trainer[k]) for k in _TRAINER_KEYS if k in cfg.trainer}
    if "numerics" in cfg:  # portable and fast numerics give different weights: no resume across them
        out["numerics"] = cfg.numerics.mode
    return out


def fingerprint(cfg: DictConfig) -> str:
    return hashlib.sha256(json.dumps(relevant_config(cfg), sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flat(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """``model.emb_size 32 -> 64, ...``: what differs between two relevant configs."""
    a, b = _flat(old), _flat(new)
    diffs = [f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


@dataclass
class Decision:
    """Where to resume from (None: fresh), and whether rank 0 must clear the folder first."""

    resume_path: str | None
    start_fresh: bool
    reason: str


def read_stamp(ckpt_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((ckpt_dir / STAMP).read_text())
    except (OSError, ValueError):
        return None


def checkpoint_problem(path: Path, fp: str) -> str | None:
    """Why ``path`` cannot be resumed from (unreadable, truncated, another config), or None."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read means "not resumable"
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'empty'})"
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        return "not a Lightning checkpoint"
    own = ckpt.get(CKPT_KEY, {}).get("fingerprint")
    if own is not None and own != fp:
        return f"saved by another configuration ({own})"
    return None


def _candidates(ckpt_dir: Path) -> list[Path]:
    """Resumable checkpoints, newest state first: last.ckpt, then the best and epoch checkpoints."""
    others = sorted(
        [p for p in ckpt_dir.glob("*.ckpt") if p.name != "last.ckpt"],
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    return [p for p in [ckpt_dir / "last.ckpt", *others] if p.is_file()]


def decide(ckpt_dir: Path, fp: str, relevant: dict[str, Any], world_size: int, resume: str) -> Decision:
    """The resume decision; reads the folder only (safe on every rank)."""
    if resume not in ("auto", "never"):
        if not Path(resume).is_file():
            raise InputError(f"train.resume={resume}: checkpoint not found")
        problem = checkpoint_problem(Path(resume), fp)
        if problem and not problem.startswith("saved by another"):
            raise InputError(f"train.resume={resume}: {problem}")
        return Decision(resume, False, "explicit checkpoint")
    stamp = read_stamp(ckpt_dir)
    if not _candidates(ckpt_dir) or (ckpt_dir / COMPLETE_MARKER).exists():
        return Decision(None, True, "no unfinished run")
    if resume == "never":
        return Decision(None, True, "train.resume=never")
    if stamp is None or stamp.get("fingerprint") != fp:
        changes = config_changes(stamp.get("config", {}), relevant) if stamp else "no fingerprint"
        return Decision(None, True, f"the configuration changed ({changes})")
    if stamp.get("world_size") != world_size:
        raise InputError(
            f"{ckpt_dir}/last.ckpt was saved by a run on {stamp.get('world_size')} processes but this run has "
            f"{world_size} (trainer.devices x trainer.num_nodes): the data order would change; resume with the "
            "same world size, or start fresh with train.resume=never"
        )
    for path in _candidates(ckpt_dir):
        problem = checkpoint_problem(path, fp)
        if problem is None:
            return Decision(str(path), False, "unfinished run of the same configuration")
        log.warning("cannot resume from %s: %s; trying an older checkpoint", path, problem)
    log.warning("no readable checkpoint in %s: starting fresh", ckpt_dir)
    return Decision(None, True, "every checkpoint unreadable")


def move_aside(ckpt_dir: Path) -> Path | None:
    """Move the folder's checkpoints to ``stale-<fingerprint>-<time>/`` beside them; returns where."""
    files = [p for p in ckpt_dir.iterdir() if not p.name.startswith(("stale-", ".lock"))]
    if not files:
        return None
    old = (read_stamp(ckpt_dir) or {}).get("fingerprint", "unknown")
    dest = ckpt_dir / f"stale-{old}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 0
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{dest.name.split('.')[0]}.{n}")
    dest.mkdir()
    for p in files:
        p.rename(dest / p.name)
    return dest


def prepare_checkpoint_dir(
    ckpt_dir: Path, decision: Decision, fp: str, relevant: dict[str, Any], world_size: int, is_global_zero: bool
) -> None:
    """Rank 0 only: set the old checkpoints aside (finished runs' are removed) and stamp the folder."""
    if not is_global_zero:
        return
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    if decision.start_fresh:
        if (ckpt_dir / COMPLETE_MARKER).exists():
            for p in ckpt_dir.iterdir():
                if not p.name.startswith(("stale-", ".lock")):
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
        elif _candidates(ckpt_dir):
            dest = move_aside(ckpt_dir)
            log.warning("starting fresh (%s): moved the resumable checkpoints aside to %s", decision.reason, dest)
    write_json_atomic(ckpt_dir / STAMP, {"fingerprint": fp, "world_size": world_size, "config": relevant})

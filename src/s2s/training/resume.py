"""Resume policy: which checkpoint (if any) a training run continues from.

A run resumes only from an unfinished run whose result-determining configuration and data (the
*fingerprint*: the config sections that decide the weights, the whole ``trainer`` section but
:data:`TRAINER_KEYS_IGNORED`, and the sha256 of every prepared file training reads,
:data:`PREPARED_FILES`) are the same and which ran on the same number of processes (the sampler's position
is counted per process, so another world size would replay or skip batches). A finished run of the
same configuration is reused: restored and exported again, without training. Anything else starts
fresh; a resumable checkpoint of another configuration is moved aside to
``stale-<fingerprint>-<time>/``, never deleted, and a finished run's files are set aside
(:data:`PREVIOUS`) until the new run has written its first checkpoint, so a run that fails before
that (missing data, a NaN loss, a full disk) leaves them in place; once it has, they too are kept
in ``stale-<fingerprint>-<time>/``. Clean up by hand: ``rm -r <checkpoint_dir>/stale-*``.

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
from omegaconf import DictConfig

from s2s.common.config_dict import flatten, plain
from s2s.common.io import InputError, sha256_file, write_json_atomic

log = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"
STAMP = "fingerprint.json"
PREVIOUS = ".previous-run"  # a finished run's files, until the next run's first checkpoint is written
CKPT_KEY = "s2s"  # our entry in every Lightning checkpoint: {"fingerprint": ..., "spm_sha256": ...}

# Trainer arguments that cannot change the trained weights: everything else in the ``trainer``
# section (a user's ``+trainer.<key>``, callbacks and plugins included) is fingerprinted. Listed
# in docs/notes/issue35.md; each is about display, logging or where files go, except the
# device count and node count, which set the world size: that is stamped and checked on its own
# (an unfinished run is then refused with one line, see :func:`decide`, rather than restarted).
TRAINER_KEYS_IGNORED = (
    "enable_progress_bar",  # display only
    "enable_model_summary",  # display only
    "log_every_n_steps",  # how often metrics are logged
    "logger",  # where metrics go (the stage adds its own)
    "default_root_dir",  # where Lightning puts its files
    "devices",  # with num_nodes: the world size, checked separately
    "num_nodes",
)
# the prepared files the train stage reads: a change means other ids, pairs or references
PREPARED_FILES = ("spm.model", "train.npz", "valid.npz", "valid.tsv")
_IRRELEVANT = {
    "data": ("mirror", "timeout_s", "source_url"),
    "train": ("num_workers", "resume", "validate_only", "save_every_n_steps"),
}
# where a source's files are fetched from; they are verified against the source's sha256 list
_SOURCE_LOCATION = ("mirror", "mirror_name")


def prepared_digests(prepared_dir: str | Path) -> dict[str, str | None]:
    """The sha256 of each of :data:`PREPARED_FILES` (None for a missing file)."""
    folder = Path(prepared_dir)
    return {name: sha256_file(folder / name) if (folder / name).is_file() else None for name in PREPARED_FILES}


def relevant_config(cfg: DictConfig) -> dict[str, Any]:
    """The part of the composed config, and the data, that determines the training result (the
    world size aside): ``seed``, the data, preprocess, model, optim and train sections (less the
    keys of ``_IRRELEVANT``), the whole ``trainer`` section less :data:`TRAINER_KEYS_IGNORED`
    (``enable_progress_bar``, ``enable_model_summary``, ``log_every_n_steps``, ``logger``,
    ``default_root_dir``, ``devices``, ``num_nodes``), ``numerics``, and under ``prepared`` the
    sha256 of the prepared files (:data:`PREPARED_FILES`), wherever the folder is."""
    out: dict[str, Any] = {"seed": cfg.seed}
    for section in ("data", "preprocess", "model", "optim", "train"):
        values = dict(plain(cfg[section]))
        for key in _IRRELEVANT.get(section, ()):
            values.pop(key, None)
        if section == "data" and isinstance(values.get("sources"), dict):
            values["sources"] = {
                name: {k: v for k, v in spec.items() if k not in _SOURCE_LOCATION} if isinstance(spec, dict) else spec
                for name, spec in values["sources"].items()
            }
        out[section] = values
    out["trainer"] = {k: v for k, v in plain(cfg.trainer).items() if k not in TRAINER_KEYS_IGNORED}
    if "numerics" in cfg:  # portable and fast numerics give different weights: no resume across them
        out["numerics"] = plain(cfg.numerics)
    out["prepared"] = prepared_digests(cfg.paths.prepared_dir)
    return out


def fingerprint(cfg: DictConfig | dict[str, Any]) -> str:
    """16 hex digits of the :func:`relevant_config` (of ``cfg``, or the one given)."""
    relevant = cfg if isinstance(cfg, dict) else relevant_config(cfg)
    return hashlib.sha256(json.dumps(relevant, sort_keys=True, default=str).encode()).hexdigest()[:16]


def trained_vocabulary(relevant: dict[str, Any]) -> str | None:
    """The sha256 of the ``spm.model`` a :func:`relevant_config` was taken with."""
    return (relevant.get("prepared") or {}).get("spm.model")


def config_changes(old: dict[str, Any], new: dict[str, Any], limit: int = 3) -> str:
    """``model.emb_size 32 -> 64, ...``: what differs between two relevant configs."""
    a, b = flatten(old), flatten(new)
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    diffs = [f"{k} {_short(a.get(k))!r} -> {_short(b.get(k))!r}" for k in keys]
    more = f" (+{len(diffs) - limit} more)" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more


def _short(value: Any) -> Any:
    """A sha256 as its first 12 digits (a prepared file's digest in a one-line reason)."""
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:12] + "..."
    return value


@dataclass
class Decision:
    """Where to resume from (None: fresh), whether rank 0 must clear the folder first, and the
    checkpoints found unusable (rank 0 moves them aside: a later save must not overwrite them)."""

    resume_path: str | None
    start_fresh: bool
    reason: str
    unusable: tuple[str, ...] = ()


def read_stamp(ckpt_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((ckpt_dir / STAMP).read_text())
    except (OSError, ValueError):
        return None


def checkpoint_problem(path: Path, fp: str, spm_sha256: str | None = None) -> str | None:
    """Why ``path`` cannot be resumed from (unreadable, truncated, trained with another vocabulary
    than ``spm_sha256``, another config), or None."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to read means "not resumable"
        return f"unreadable ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'empty'})"
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        return "not a Lightning checkpoint"
    stamp = ckpt.get(CKPT_KEY, {})
    trained = stamp.get("spm_sha256")
    if spm_sha256 is not None and trained is not None and trained != spm_sha256:
        return (
            f"trained with another SentencePiece vocabulary (spm.model sha256 {trained[:12]}..., "
            f"the prepared data's {spm_sha256[:12]}...): its ids mean other pieces"
        )
    own = stamp.get("fingerprint")
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
        problem = checkpoint_problem(Path(resume), fp, trained_vocabulary(relevant))
        if problem and not problem.startswith("saved by another"):
            raise InputError(f"train.resume={resume}: {problem}")
        return Decision(resume, False, "explicit checkpoint")
    if resume == "never":
        return Decision(None, True, "train.resume=never")
    stamp = read_stamp(ckpt_dir)
    if not _candidates(ckpt_dir):
        return Decision(None, True, "no checkpoint")
    finished = (ckpt_dir / COMPLETE_MARKER).exists()
    if stamp is None or stamp.get("fingerprint") != fp:
        changes = config_changes(stamp.get("config", {}), relevant) if stamp else "no fingerprint"
        return Decision(None, True, f"the configuration changed ({changes})")
    if stamp.get("world_size") != world_size:
        if finished:
            return Decision(None, True, f"the finished run ran on {stamp.get('world_size')} processes")
        raise InputError(
            f"{ckpt_dir}/last.ckpt was saved by a run on {stamp.get('world_size')} processes but this run has "
            f"{world_size} (trainer.devices x trainer.num_nodes): the data order would change; resume with the "
            "same world size, or start fresh with train.resume=never"
        )
    unusable: list[str] = []
    for path in _candidates(ckpt_dir):
        problem = checkpoint_problem(path, fp, trained_vocabulary(relevant))
        if problem is None:
            reason = (
                "finished run of the same configuration: exported again without training"
                if finished
                else "unfinished run of the same configuration"
            )
            return Decision(str(path), False, reason, tuple(unusable))
        log.warning("cannot resume from %s: %s; trying an older checkpoint", path, problem)
        unusable.append(str(path))
    log.warning("no readable checkpoint in %s: starting fresh", ckpt_dir)
    return Decision(None, True, "every checkpoint unreadable")


def move_aside(ckpt_dir: Path, source: Path | None = None) -> Path | None:
    """Move a run's files (those of ``source``, default ``ckpt_dir`` itself) to
    ``ckpt_dir/stale-<fingerprint>-<time>/``; returns where. Nothing in it is read again: remove
    it by hand (``rm -r``) when it is no longer wanted, or move its files back to resume it."""
    source = ckpt_dir if source is None else source
    files = _run_files(source)
    if not files:
        return None
    old = (read_stamp(source) or {}).get("fingerprint", "unknown")
    dest = ckpt_dir / f"stale-{old}-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 0
    while dest.exists():
        n += 1
        dest = dest.with_name(f"{dest.name.split('.')[0]}.{n}")
    dest.mkdir()
    for p in files:
        p.rename(dest / p.name)
    return dest


def _run_files(ckpt_dir: Path) -> list[Path]:
    """The folder's entries that belong to a run (not the lock, stale runs or a set-aside run)."""
    return [p for p in ckpt_dir.iterdir() if not p.name.startswith(("stale-", ".lock", PREVIOUS))]


def _remove(path: Path) -> None:
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def move_unusable(path: Path) -> Path:
    """Rename an unreadable checkpoint to ``<name>.corrupt-<n>`` (the first free n): kept, never overwritten."""
    n = 1
    while (dest := path.with_name(f"{path.name}.corrupt-{n}")).exists():
        n += 1
    path.rename(dest)
    return dest


def retire_finished(ckpt_dir: Path) -> None:
    """Set a finished run's files aside in ``PREVIOUS`` (the new run has not saved anything yet)."""
    previous = ckpt_dir / PREVIOUS
    discard_previous(ckpt_dir)  # one left over is kept aside, never deleted
    previous.mkdir()
    for p in _run_files(ckpt_dir):
        p.rename(previous / p.name)


def discard_previous(ckpt_dir: Path) -> None:
    """The new run saved its first checkpoint: the finished run set aside in :data:`PREVIOUS` is
    kept in ``stale-<fingerprint>-<time>/``, like an unfinished run's checkpoints (never deleted)."""
    ckpt_dir = Path(ckpt_dir)
    previous = ckpt_dir / PREVIOUS
    if not previous.exists():
        return
    dest = move_aside(ckpt_dir, previous)
    shutil.rmtree(previous)  # empty now (or held no run files)
    if dest is not None:
        log.warning(
            "the finished run this one replaces is kept in %s (remove it with `rm -r %s` when it is "
            "no longer wanted; move its files back into %s to export it again)",
            dest,
            dest,
            ckpt_dir,
        )


def restore_previous(ckpt_dir: Path) -> bool:
    """The new run failed before its first checkpoint: put the finished run's files back (True if any)."""
    previous = Path(ckpt_dir) / PREVIOUS
    if not previous.is_dir():
        return False
    for p in _run_files(ckpt_dir):  # the new run's stamp and run.json
        _remove(p)
    for p in previous.iterdir():
        p.rename(ckpt_dir / p.name)
    previous.rmdir()
    log.warning("restored the finished run's checkpoints in %s", ckpt_dir)
    return True


def recover_previous(ckpt_dir: Path) -> None:
    """Rank 0, before deciding: finish what a killed run left. Its set-aside finished run is put back
    unless the killed run had already saved a checkpoint of its own."""
    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / PREVIOUS).is_dir():
        return
    if any(ckpt_dir.glob("*.ckpt")):
        discard_previous(ckpt_dir)
    else:
        restore_previous(ckpt_dir)


def prepare_checkpoint_dir(
    ckpt_dir: Path, decision: Decision, fp: str, relevant: dict[str, Any], world_size: int, is_global_zero: bool
) -> None:
    """Rank 0 only: set the old checkpoints aside and stamp the folder.

    A finished run's files go to ``PREVIOUS`` (removed at the new run's first checkpoint, restored
    if it fails before); an unfinished run's resumable checkpoints to ``stale-<fingerprint>-<time>/``;
    unreadable checkpoints of the run being resumed to ``<name>.corrupt-<n>``.
    """
    if not is_global_zero:
        return
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for name in decision.unusable:
        if Path(name).exists():
            dest = move_unusable(Path(name))
            log.warning("moved the unusable checkpoint %s aside to %s", name, dest)
    if decision.start_fresh:
        if (ckpt_dir / COMPLETE_MARKER).exists():
            retire_finished(ckpt_dir)
            log.warning(
                "starting fresh (%s): the finished run's files are set aside in %s, then kept in "
                "stale-<fingerprint>-<time>/ once this run saves its first checkpoint",
                decision.reason,
                ckpt_dir / PREVIOUS,
            )
        elif _candidates(ckpt_dir):
            dest = move_aside(ckpt_dir)
            log.warning("starting fresh (%s): moved the resumable checkpoints aside to %s", decision.reason, dest)
    write_json_atomic(ckpt_dir / STAMP, {"fingerprint": fp, "world_size": world_size, "config": relevant})

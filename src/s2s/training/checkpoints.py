"""Checkpoint callbacks: where and when the train stage writes its checkpoints, and what they hold.

``last.ckpt`` after every validation and at the end (:class:`LastCheckpoint`), periodic saves only at
an optimizer step's end and never just before an epoch-end validation (:class:`StepBoundaryCheckpoint`),
the run's stamp in every checkpoint (:class:`StampCheckpoints`), and the saved paths of a folder that
moved (:class:`MovedFolder`). Why each exists: resume must give an uninterrupted run's weights.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback, ModelCheckpoint

from s2s.training.resume import CKPT_KEY


class OptimizerStepBoundary(Callback):
    """Knows whether the batch that just ended completed an optimizer step.

    With gradient accumulation only the last batch of a window steps; a checkpoint taken after any
    other batch would count that batch as consumed while its gradient is not saved.
    """

    _step_at_batch_start = -1

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._step_at_batch_start = trainer.global_step

    def stepped(self, trainer: pl.Trainer) -> bool:
        return trainer.global_step != self._step_at_batch_start


def validation_follows(trainer: pl.Trainer) -> bool:
    """The batch that just ended is its epoch's last, and a validation follows it.

    A checkpoint written there (before the validation) resumes wrongly: Lightning restarts the
    next epoch without counting it as started, so a checkpoint saved during that epoch is later
    taken for one of a finished epoch, and its resume replays the epoch's first batches (measured:
    a SIGTERM at the tiny preset's last batch of epoch 1, resume, a SIGTERM 2 steps later, resume:
    2 extra steps and other weights). :class:`LastCheckpoint` saves right after that validation.
    """
    every = trainer.check_val_every_n_epoch
    validates = sum(trainer.num_val_batches) > 0 and (not every or (trainer.current_epoch + 1) % every == 0)
    return bool(trainer.is_last_batch and validates)


class MovedFolder(Callback):
    """Restores every ``ModelCheckpoint``'s state in a checkpoint folder that moved.

    Lightning stores the folder's absolute path in each ``ModelCheckpoint``'s state and restores
    ``best_model_score``, ``best_k_models``, ``kth_value`` and ``last_model_path`` only when that
    path is today's ``dirpath``; ``best_model_path`` it restores as saved. In a copy of the project
    (``cp -a``, a tarball, a queue worker) a finished run was then exported again from the old
    folder's ``best.ckpt`` (or failed where that was gone) with ``val_bleu: None``, and a resumed
    run took its next validation for the best whatever it scored (issue 34, item 5).

    Before the states are loaded (``on_load_checkpoint`` runs for every callback first), the state
    of each ``ModelCheckpoint`` whose folder holds the checkpoint being restored gets its saved
    paths moved from the folder they were saved in to today's. A checkpoint from elsewhere
    (``train.resume=<path>`` of another folder) is Lightning's case. The callbacks and their state
    keys stay Lightning's, so checkpoints saved before this callback existed restore in full.
    """

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        states = checkpoint.get("callbacks") or {}
        restoring = trainer.ckpt_path
        if restoring is None:
            return
        folder = os.path.realpath(os.path.dirname(os.path.abspath(str(restoring))))
        for callback in trainer.checkpoint_callbacks:
            state = states.get(callback.state_key) if isinstance(callback, ModelCheckpoint) else None
            if not isinstance(state, dict) or not callback.dirpath:
                continue
            saved, dirpath = state.get("dirpath"), str(callback.dirpath)
            if saved and saved != dirpath and os.path.realpath(dirpath) == folder:
                states[callback.state_key] = moved_state(state, saved, dirpath)


def moved_state(state: dict[str, Any], saved: str, dirpath: str) -> dict[str, Any]:
    """A ``ModelCheckpoint`` state saved in folder ``saved``, its paths in ``saved`` moved to ``dirpath``."""

    def moved(path: Any) -> Any:
        if not isinstance(path, str) or not path or not PurePath(path).is_relative_to(saved):
            return path
        return str(Path(dirpath) / PurePath(path).relative_to(saved))

    out = {**state, "dirpath": dirpath}
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in out:
            out[key] = moved(out[key])
    if isinstance(out.get("best_k_models"), dict):
        out["best_k_models"] = {moved(k): v for k, v in out["best_k_models"].items()}
    return out


class StepBoundaryCheckpoint(OptimizerStepBoundary, ModelCheckpoint):
    """A ``ModelCheckpoint`` whose step-based saves (``every_n_train_steps``) happen only at the end of
    a batch that completed an optimizer step.

    Lightning's own check is ``global_step % n == 0``, which also holds during the batches of the
    next accumulation window (after a resume it saves there: its last saved step is not restored);
    such a checkpoint counts those batches as consumed while their gradients are lost.
    """

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        # at an epoch's last batch, LastCheckpoint saves after the validation instead (see validation_follows)
        if self.stepped(trainer) and not validation_follows(trainer):
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)


class LastCheckpoint(ModelCheckpoint):
    """``last.ckpt`` after every validation, whether or not it improved ``val_bleu``, and at the end
    of training.

    Lightning's monitored checkpoint refreshes ``last.ckpt`` (``save_last``) only when it saved a
    top-k checkpoint at that step, so after a validation that did not improve, ``last.ckpt`` held
    the last periodic save and a resume replayed up to ``train.save_every_n_steps`` steps. This
    callback saves the newest state under that name at each validation, after the best
    checkpoint's own save (it comes after it in the callback list), so its state holds the updated
    best score.

    Both save at the end of validation (``save_on_train_epoch_end=False``), not in
    ``on_train_epoch_end``: a checkpoint written there holds the epoch as processed but not
    completed, and with a step budget (``trainer.max_steps``) Lightning's resume from it counted
    the epoch twice. The sampler then drew the next epoch's batches one epoch early and
    ``max_epochs`` came an epoch early (the tiny preset killed at its first epoch's end, then
    resumed: other weights, step 50 instead of 57). A run whose step budget ends mid-epoch has no
    validation at its last step; ``on_train_end`` saves that last state.
    """

    def __init__(self, dirpath: Path):
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            save_top_k=1,
            enable_version_counter=False,
            save_on_train_epoch_end=False,
        )
        self._saved_step = -1  # the global step of the latest checkpoint of any callback

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        # every save at a step also writes last.ckpt (periodic, signal) or follows this callback's
        # own save at a validation (best.ckpt), so a save at this step means last.ckpt is current
        self._saved_step = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.global_step != self._saved_step and not trainer.sanity_checking:
            trainer.save_checkpoint(Path(self.dirpath) / "last.ckpt")


class StampCheckpoints(Callback):
    """Writes the run's fingerprint and vocabulary hash into every checkpoint.

    Resume and export check it, so a checkpoint of another configuration (another process in the
    same folder, a stale file) is never resumed or exported under this run's config.
    """

    def __init__(self, fingerprint: str, spm_sha256: str):
        self.stamp = {"fingerprint": fingerprint, "spm_sha256": spm_sha256}

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict) -> None:
        checkpoint[CKPT_KEY] = dict(self.stamp)

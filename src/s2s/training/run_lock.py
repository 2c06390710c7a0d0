"""One training per checkpoint folder: an exclusive ``fcntl`` lock on ``<checkpoint_dir>/.lock``.

The kernel drops the lock when its process dies (even by SIGKILL), so a stale lock file of a dead
process is simply taken over. The holder's PID is written into the file for the error message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from s2s.common.io import InputError

LOCK_NAME = ".lock"

# rank variables of the launchers Lightning supports (its own DDP children, torchrun, SLURM, MPI)
_RANK_VARIABLES = ("LOCAL_RANK", "RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK")


def refuse_if_held(ckpt_dir: str | Path, single_process: bool) -> None:
    """Fail at once, before the seconds of importing Lightning and MLflow, when another training
    holds the folder's lock. Only a check: :class:`CheckpointLock` still takes the lock on rank 0.

    Run only where this process cannot be a non-zero rank, which would find rank 0's own lock:
    a one-process configuration, or no launcher variable naming another rank (whatever this
    misses is refused a few seconds later by the real lock).
    """
    if not single_process and any(os.environ.get(v, "0") != "0" for v in _RANK_VARIABLES):
        return
    path = Path(ckpt_dir) / LOCK_NAME
    try:
        fh = open(path)  # noqa: SIM115 - closed below
    except OSError:
        return  # no lock file: nobody holds it (an unreadable one is the real lock's to report)
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = fh.read().strip() or "unknown"
            raise InputError(
                f"{path.parent} is locked by process PID {holder} (another training in the same "
                "checkpoint folder); wait for it or set paths.checkpoint_dir"
            ) from None
        fcntl.flock(fh, fcntl.LOCK_UN)


class CheckpointLock:
    """Held for the life of the process (or until :meth:`release`)."""

    def __init__(self, ckpt_dir: str | Path):
        self.path = Path(ckpt_dir) / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self) -> CheckpointLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+")  # noqa: SIM115 - kept open while the lock is held
        except OSError as err:
            raise InputError(
                f"{self.path.parent}: checkpoint folder is not writable ({err.strerror}); "
                "fix its permissions or set paths.checkpoint_dir"
            ) from err
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise InputError(
                f"{self.path.parent} is locked by process PID {holder} (another training in the same "
                "checkpoint folder); wait for it or set paths.checkpoint_dir"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

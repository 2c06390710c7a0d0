"""s2s.training.run_lock: a lock held by another process is refused naming it; a dead holder's is taken over."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from s2s.common.io import InputError
from s2s.training.run_lock import LOCK_NAME, CheckpointLock

from helpers.processes import hold_lock


def test_lock_held_by_another_process_is_refused_naming_it(tmp_path: Path) -> None:
    proc = hold_lock(tmp_path)
    try:
        with pytest.raises(InputError, match=f"locked by process PID {proc.pid}"):
            CheckpointLock(tmp_path).acquire()
    finally:
        proc.stdin.close()
        proc.wait(timeout=60)
    CheckpointLock(tmp_path).acquire().release()  # free again once the holder ended


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    proc = hold_lock(tmp_path)
    proc.kill()  # SIGKILL: no cleanup, the lock file stays with the dead PID in it
    proc.wait(timeout=60)
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(proc.pid)
    lock = CheckpointLock(tmp_path).acquire()
    assert (tmp_path / LOCK_NAME).read_text().strip() == str(os.getpid())
    lock.release()



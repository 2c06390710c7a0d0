"""Processes the tests start and end: a free local port for a server, a server's process group ended,
a second process holding a checkpoint folder's lock."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from helpers.paths import SRC


def free_port() -> int:
    """A port free on 127.0.0.1 now (another process may take it before the caller binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """End the server and the uvicorn/job workers it spawned (one process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL also takes workers that outlive the parent
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
    proc.wait()


HOLD = """
import sys
from s2s.training.run_lock import CheckpointLock
lock = CheckpointLock(sys.argv[1]).acquire()
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
"""


def hold_lock(ckpt_dir: Path) -> subprocess.Popen:
    """A second real process holding the lock; returns once it says so (an event, not a delay)."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(ckpt_dir)], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc

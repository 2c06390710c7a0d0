"""Processes the tests start and end: a free local port for a server, a server's process group ended."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


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

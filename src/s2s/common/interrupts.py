"""Ctrl-C while a stage script is still starting ends in one line and exit 130, not a traceback.

A stage script imports this module first (before Hydra, torch, MLflow...), which makes SIGINT
end the process quietly during the imports; :func:`s2s.common.cli.stage_main` and
:func:`~s2s.common.cli.user_errors` then restore Python's own handler, so the stage's code sees a
``KeyboardInterrupt`` as usual (training saves a checkpoint on it) and an uncaught one is reported
in one line too. Nothing is written before the stage's main runs, so there is nothing to undo.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C


def _while_starting(signum: int, frame: FrameType | None) -> None:
    print("error: interrupted (Ctrl-C) while starting; nothing was written", file=sys.stderr, flush=True)
    raise SystemExit(INTERRUPTED)


def restore() -> None:
    """Python's own SIGINT handler again (``KeyboardInterrupt``), where this module installed its own."""
    if signal.getsignal(signal.SIGINT) is _while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not where Ctrl-C is ignored (nohup, &)
    signal.signal(signal.SIGINT, _while_starting)

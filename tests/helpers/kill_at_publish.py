"""Run a stage script, killing it (SIGKILL) at one step of its folder publish.

    python tests/helpers/kill_at_publish.py STEP src/preprocess.py override...

STEP is one of s2s.common.io.PUBLISH_STEPS.  s2s.common.io.publish_hook, a no-op in production, is replaced by
one that kills this process at that step: a test stops a real stage at an exact point of its
publish instead of guessing the moment with a timer.
"""

import os
import runpy
import signal
import sys
from pathlib import Path

from paths import SRC  # tests/helpers/paths.py: a script's own folder is sys.path[0]

sys.path.insert(0, str(SRC))

import s2s.common.io  # noqa: E402

step, script, *overrides = sys.argv[1:]
assert step in s2s.common.io.PUBLISH_STEPS, step


def kill_at(current: str, target: Path) -> None:
    if current == step:
        print(f"killed at publish step {step} of {target}", file=sys.stderr, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


s2s.common.io.publish_hook = kill_at
sys.argv = [script, *overrides]
runpy.run_path(script, run_name="__main__")

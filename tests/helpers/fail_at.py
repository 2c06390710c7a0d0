"""Run a stage script with one function failing as a full disk would, or killed where it is called.

    python tests/helpers/fail_at.py s2s.evaluation.scoring:write_translations src/evaluate.py override...
    python tests/helpers/fail_at.py --kill s2s.tracking.registry:describe_version src/train.py override...

The function (``module:name``, or ``module:Class.method``) is replaced before the script imports
it, by one raising ``OSError(ENOSPC)``, or with ``--kill`` by one that kills this process with
SIGKILL (nothing is cleaned up, as after a power loss or the OOM killer): a test makes a real
stage fail at an exact point of its work.
"""

import errno
import importlib
import os
import runpy
import signal
import sys

from paths import SRC  # tests/helpers/paths.py: a script's own folder is sys.path[0]

sys.path.insert(0, str(SRC))

args = sys.argv[1:]
kill = args[0] == "--kill"
target, script, *overrides = args[1:] if kill else args
module_name, attr_path = target.split(":")
*owners, func_name = attr_path.split(".")
owner = importlib.import_module(module_name)
for name in owners:
    owner = getattr(owner, name)
getattr(owner, func_name)  # must exist


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def killed(*args, **kwargs):
    print(f"killed at {target}", file=sys.stderr, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)


setattr(owner, func_name, killed if kill else disk_full)
sys.argv = [script, *overrides]
runpy.run_path(script, run_name="__main__")

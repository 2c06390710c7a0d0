"""Run a stage script with one function of the package failing as a full disk would.

    python tests/helpers/fail_at.py s2s.evaluation.scoring:write_translations src/evaluate.py override...

The function is replaced before the script imports it, by one raising ``OSError(ENOSPC)``: a test
makes a real stage fail at an exact point of its work.
"""

import errno
import importlib
import runpy
import sys

from paths import SRC  # tests/helpers/paths.py: a script's own folder is sys.path[0]

sys.path.insert(0, str(SRC))

target, script, *overrides = sys.argv[1:]
module_name, func_name = target.split(":")
module = importlib.import_module(module_name)
getattr(module, func_name)  # must exist


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


setattr(module, func_name, disk_full)
sys.argv = [script, *overrides]
runpy.run_path(script, run_name="__main__")

"""What every stage script shares: user errors end the process with one clear line, no traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from s2s.io import InputError

# (module, class) of further user-facing errors; looked up only if the module is loaded, so a
# light stage (download) does not import torch just to be able to catch a training error
_LAZY_USER_ERRORS = (("s2s.tracking", "TrackingUnreachable"), ("s2s.task", "NonFiniteLossError"))


def _is_user_error(err: BaseException) -> bool:
    if isinstance(err, InputError):
        return True
    for module, name in _LAZY_USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(err, cls):
            return True
    return False


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user error (bad file, option, checkpoint, unreachable server) as one line and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except Exception as err:
            if not _is_user_error(err):
                raise
            logging.getLogger("s2s").error("%s", err)
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper

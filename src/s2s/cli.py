"""What every stage script shares: user errors end the process with one clear line, no traceback."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from s2s.io import InputError

USER_ERRORS: tuple[type[BaseException], ...] = (InputError,)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user error (bad file, option, checkpoint, unreachable server) as one line and exit 2."""
    from s2s.task import NonFiniteLossError
    from s2s.tracking import TrackingUnreachable

    handled = (*USER_ERRORS, TrackingUnreachable, NonFiniteLossError)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except handled as err:
            logging.getLogger("s2s").error("%s", err)
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapper

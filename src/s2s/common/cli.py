"""What every stage script shares: user errors end the process with one clear line, no traceback."""

from __future__ import annotations

import errno
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from s2s.common import interrupts
from s2s.common.io import InputError

# (module, class, prefix) of further user-facing errors; looked up only if the module is loaded, so
# a light stage (download) does not import torch just to be able to catch a training error
_LAZY_USER_ERRORS = (
    ("s2s.tracking.store", "TrackingUnreachable", ""),
    ("s2s.training.task", "NonFiniteLossError", ""),
    # Lightning refusing the trainer.* options (an accelerator this machine lacks, ...)
    ("lightning_fabric.utilities.exceptions", "MisconfigurationException", "trainer: "),
)
# a write that failed for lack of room: the disk or quota is full, or `ulimit -f` was reached
# (Python ignores SIGXFSZ, so the write fails with EFBIG instead of killing the process)
_NO_ROOM = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_NO_ROOM_HINT = "free disk space (or raise the file size limit, ulimit -f) and run the same command again"
CONF_DIR = Path(__file__).resolve().parents[3] / "conf"
# Hydra prints its own composition errors (an unknown config group option, a key that is not in the
# config, an override it cannot parse) over several lines and exits 1, unless HYDRA_FULL_ERROR=1 asks it
# to raise them. stage_main sets the variable while Hydra composes (not while the stage's own code runs,
# where Hydra's usual report of a bug is kept) and turns what Hydra raises into one line and exit 2.
_FULL_ERROR = "HYDRA_FULL_ERROR"
_composing = {"own": False}  # True while stage_main holds HYDRA_FULL_ERROR=1 for Hydra's composition


def _chain(err: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return seen


def user_message(err: BaseException) -> str | None:
    """The one-line message of a user error (bad input, a full disk), or None for a bug."""
    if isinstance(err, InputError):
        return str(err)
    for module, name, prefix in _LAZY_USER_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(err, cls):
            return prefix + " ".join(str(err).split())
    if "yaml" in sys.modules and isinstance(err, sys.modules["yaml"].YAMLError):
        return f"not valid YAML: {' '.join(str(err).split())}"
    for e in _chain(err):
        if isinstance(e, OSError) and e.errno in _NO_ROOM:
            return f"{e.filename or 'writing a file'}: {e.strerror}: {_NO_ROOM_HINT}"
        if isinstance(e, RuntimeError) and "file write failed" in str(e):  # torch.save's C++ writer
            return f"writing a file failed ({' '.join(str(e).split())[:200]}): {_NO_ROOM_HINT}"
    return None


def _log_to_files(message: str) -> None:
    """The error into the stage's log file (Hydra's file handler), not again onto the console."""
    record = logging.LogRecord("s2s", logging.ERROR, __file__, 0, "%s", (message,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def _fail(message: str, log: bool = True, code: int = 2) -> None:
    if log:
        _log_to_files(message)
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Print a user error (bad file, option, checkpoint, unreachable server, full disk) as one line and exit 2."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        interrupts.restore()
        own = _composing["own"]
        if own:  # the stage's code runs: a bug keeps Hydra's usual report
            os.environ.pop(_FULL_ERROR, None)
        try:
            result = func(*args, **kwargs)
            if own:  # a sweep composes its next job after this one
                os.environ[_FULL_ERROR] = "1"
            return result
        except KeyboardInterrupt:
            _fail("interrupted (Ctrl-C)", code=interrupts.INTERRUPTED)
        except Exception as err:
            message = user_message(err)
            if message is None:
                raise
            _fail(message)

    return wrapper


def _config_files(argv: Sequence[str], conf_dir: Path) -> list[Path]:
    """The YAML files Hydra may compose: every file of conf/, and ``--config-dir``/``--config-name``."""
    files = sorted(conf_dir.rglob("*.yaml"))
    opts: dict[str, str] = {}
    args = list(argv)
    for i, arg in enumerate(args):
        for long, short in (("--config-dir", "-cd"), ("--config-name", "-cn")):
            if arg in (long, short) and i + 1 < len(args):
                opts[long] = args[i + 1]
            elif arg.startswith(long + "="):
                opts[long] = arg.split("=", 1)[1]
    if "--config-dir" in opts and "--config-name" in opts:
        name = opts["--config-name"]
        files.append(Path(opts["--config-dir"]) / (name if name.endswith(".yaml") else name + ".yaml"))
    return files


def check_yaml(argv: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Refuse a config file that is not YAML in one line naming it: Hydra would print a parser's
    traceback (and exit 1) before the stage's own error handling runs."""
    import yaml

    for path in _config_files(argv, conf_dir):
        if not path.is_file():
            continue  # Hydra names a missing config itself
        try:
            with open(path, encoding="utf-8") as fh:
                yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: not valid YAML ({' '.join(str(err).split())})") from err


def hydra_message(err: BaseException) -> str:
    """One line for an error Hydra raised while composing the config: the override it could not
    parse, if any, and Hydra's own words without the config search path it lists after them."""
    text = " ".join(str(err).split()).split(" Config search path:")[0]
    override = getattr(err, "override", None)
    return f"override {override!r}: {text}" if override else f"the command line or config: {text}"


def stage_main(main: Callable[[], Any]) -> None:
    """Run a stage script's Hydra ``main``: its config files checked first, user errors in one line."""
    try:
        check_yaml(sys.argv[1:])
    except InputError as err:
        _fail(str(err), log=False)  # before Hydra: no log file yet
    interrupts.restore()
    from hydra.errors import HydraException

    before = os.environ.get(_FULL_ERROR)
    own = before != "1"  # a user who set it to 1 asked for Hydra's full report
    if own:
        os.environ[_FULL_ERROR] = "1"
    _composing["own"] = own
    try:
        main()
    except KeyboardInterrupt:  # in Hydra's own start-up, before the stage's code runs
        _fail("interrupted (Ctrl-C)", log=False, code=interrupts.INTERRUPTED)
    except HydraException as err:
        if not (own and os.environ.get(_FULL_ERROR) == "1"):
            raise  # raised while the stage's code ran (the variable is unset then): a bug
        _fail(hydra_message(err), log=False)
    finally:
        if own:
            os.environ.pop(_FULL_ERROR, None)
            if before is not None:
                os.environ[_FULL_ERROR] = before
        _composing["own"] = False

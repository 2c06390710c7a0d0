"""File helpers shared by every stage.

Every output goes through :func:`atomic_path`: it is written under a temporary name in the same
folder and renamed into place only when complete, so a killed stage never leaves a file that DVC
or a later stage would take as valid.  Input readers fail with the file and line at fault.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class InputError(ValueError):
    """Bad user input (a corpus file, an option): the message names the file, line or option."""


# the steps of publishing a folder, in order; :func:`publish_hook` is called after each
PUBLISH_STEPS = ("written", "aside", "renamed")


def publish_hook(step: str, target: Path) -> None:
    """Called by :func:`atomic_path` after each step of :data:`PUBLISH_STEPS`; does nothing.

    It exists so that a test can stop a real stage at an exact point of its publish (for instance by
    replacing it with a function that kills the process) instead of guessing the moment with a timer.
    """


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (on this host)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _aside(target: Path) -> Path:
    return target.parent / f".{target.name}.old"


def _remove_stale_temps(target: Path) -> None:
    """Remove the temporary siblings of ``target`` left by a killed process (its pid is in the name)."""
    pattern = re.compile(rf"\.{re.escape(target.name)}\.(\d+)\.[^/]+\.tmp")
    for entry in target.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if not match or pid_alive(int(match.group(1))):
            continue
        log.warning("removing %s, left by an interrupted run", entry)
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def recover_dir(target: str | os.PathLike[str]) -> None:
    """Finish or undo a folder publish that a killed process left half done.

    The old folder set aside (``.<name>.old``) is put back when ``target`` is missing, and removed
    when the new ``target`` is in place; temporary folders of dead processes are removed.
    """
    target = Path(target)
    if not target.parent.is_dir():
        return
    aside = _aside(target)
    if aside.exists():
        if target.exists():
            log.warning("removing %s: the new %s was published after it", aside, target)
            shutil.rmtree(aside)
        else:
            log.warning("restoring %s from %s: its replacement was interrupted", target, aside)
            os.replace(aside, target)
    _remove_stale_temps(target)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling path of ``target``; rename it onto ``target`` on success.

    On any exception the temporary file or folder is removed and ``target`` is left untouched.
    A folder cannot be renamed over an existing one, so the old folder is first renamed aside
    (``.<name>.old``), the new one renamed into place, then the old one removed: a kill at any
    point leaves a complete folder (old or new) or an aside copy that the next call (or
    :func:`recover_dir`) puts back.  Temporary names carry the process id, so a later run removes
    what a killed one left without touching a live run's.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        recover_dir(target)
    else:
        _remove_stale_temps(target)
    prefix = f".{target.name}.{os.getpid()}."
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=".tmp", dir=target.parent))
        tmp.chmod(0o755)
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        tmp.chmod(0o644)
    aside = _aside(target)
    try:
        yield tmp
        if is_dir:
            publish_hook("written", target)
            if target.exists():
                os.replace(target, aside)
            publish_hook("aside", target)
            os.replace(tmp, target)
            publish_hook("renamed", target)
            if aside.exists():
                shutil.rmtree(aside)
        else:
            os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if is_dir and aside.exists() and not target.exists():
            os.replace(aside, target)
        raise


def write_text_atomic(target: str | os.PathLike[str], text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | os.PathLike[str], obj: Any) -> None:
    write_text_atomic(target, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """Read a UTF-8 text file (gzip if it ends in ``.gz``), one sentence a line, newline stripped.

    Policy for invalid UTF-8: fail, naming the file and the line (a silently skipped line would
    misalign the two sides of a parallel corpus).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file not found")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                raw = fh.read()
        else:
            raw = path.read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
        raise InputError(f"{path}: not a valid gzip file ({err})") from err
    out = decode_lines(raw, str(path))
    if not out:
        raise InputError(f"{path}: file is empty")
    return out


def decode_lines(raw: bytes, source: str) -> list[str]:
    """Split UTF-8 bytes into lines at ``\\n`` only (a final newline ends the last line, ``\\r\\n`` counts
    ends the line); fail naming ``source`` and the line on invalid UTF-8.

    Only ``\\n`` separates lines, unlike Python's text mode, which also splits at a lone ``\\r``
    and so would turn one line of a parallel corpus or of a translate input into two.
    """
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for number, line in enumerate(lines, start=1):
        try:
            out.append(line.decode("utf-8").rstrip("\r"))
        except UnicodeDecodeError as err:
            raise InputError(f"{source}, line {number}: invalid UTF-8 ({err.reason} at byte {err.start})") from err
    return out


def sha256_file(path: str | os.PathLike[str]) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_writable_dir(path: str | os.PathLike[str], option: str) -> None:
    """Refuse, before any work, an output folder this process cannot create or write.

    Found at the end instead, a read-only ``paths.model_dir`` costs the whole training budget. The
    nearest existing folder is probed by creating (and removing) a temporary file in it: the
    permission bits alone say nothing for root or on a read-only mount. Nothing is created.
    """
    target = Path(path).absolute()
    existing = target
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(f"{option}={path}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise InputError(f"{option}={path}: {existing} is not writable ({err.strerror})") from None

"""The composed config file a stage started with must still be there when it publishes.

Two ``dvc exp run`` at once: the second recomposes ``params.yaml`` (then fails on DVC's lock) while
the first's stages still run with the old values; DVC would then record the new file for the old
model. A stage remembers the file's hash first thing (:func:`record_params_file`) and refuses to
publish when it changed (:func:`check_params_file`). Used by every stage that publishes: download,
preprocess, train and evaluate.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from s2s.common.io import InputError

_started_with: tuple[Path, str] | None = None


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_params_file() -> Path | None:
    """Remember the hash of the config file this stage was composed from (``--config-dir . --config-name
    params``, as DVC runs every stage); call first thing in a stage's main. Composed from ``conf/``
    (no file of that name in a ``--config-dir``), there is nothing to guard.
    """
    global _started_with
    from hydra.core.hydra_config import HydraConfig

    hc = HydraConfig.get()
    for source in hc.runtime.config_sources:
        if source.provider == "command-line" and source.schema == "file":
            path = Path(source.path) / f"{hc.job.config_name}.yaml"
            if path.is_file():
                _started_with = (path.resolve(), _digest(path))
                return path
    return None


def check_params_file() -> None:
    """Refuse to publish outputs when the config file changed since :func:`record_params_file`."""
    if _started_with is None:
        return
    path, digest = _started_with
    try:
        changed = _digest(path) != digest
    except OSError:
        changed = True
    if changed:
        raise InputError(
            f"{path.name} changed while this stage ran (another dvc exp run?): {path} no longer holds the "
            "config this stage started with, so nothing is published; run experiments in parallel with "
            "`dvc exp run --queue` and `dvc queue start`"
        )

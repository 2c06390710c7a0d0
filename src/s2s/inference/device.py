"""Which accelerator a stage runs on, and in which precision (plain PyTorch).

Stages that are not driven by Lightning (evaluate, translate, the benchmarks) take a ``device``
setting and a ``precision`` from the config; these two helpers turn them into a ``torch.device``
and an autocast context, so that every stage reads the settings the same way.  ``auto`` means
"the best this machine has": CUDA when present, and bf16 autocast on GPUs that support it.  On a
CPU ``auto`` precision stays float32, because bf16 decoding gives (slightly) different outputs
from the float32 model that training validated.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from s2s.common.io import InputError

PRECISIONS = ("auto", "32", "bf16", "16")


def resolve_device(setting: str = "auto") -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.

    Raises :class:`InputError` for an unknown value or a CUDA device this machine does not have,
    instead of failing later inside the first tensor copy.
    """
    setting = str(setting).strip().lower()
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as err:
        raise InputError(f"device={setting!r}: expected auto, cpu, cuda or cuda:N") from err
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"device={setting!r}: expected auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device={setting!r}: no CUDA device on this machine (use device=auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"device={setting!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device


def autocast_dtype(device: torch.device, precision: str = "auto") -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device``; None means plain float32.

    ``auto``: bf16 on CUDA devices that support it, else float32 (also on CPUs).  ``bf16``/``16``
    ask for bf16/fp16 explicitly (fp16 only on CUDA); ``32`` is float32.
    """
    precision = str(precision).strip().lower().removesuffix("-mixed").removesuffix("-true")
    if precision not in PRECISIONS:
        raise InputError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "32":
        return None
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "16":
        if device.type != "cuda":
            raise InputError("precision=16 (float16) needs a CUDA device; use bf16 or 32 on a CPU")
        return torch.float16
    return torch.bfloat16


@contextlib.contextmanager
def autocast(device: torch.device, precision: str = "auto") -> Iterator[None]:
    """Autocast for ``precision`` on ``device`` (a no-op for float32)."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's parameters (CPU for a model without parameters)."""
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")

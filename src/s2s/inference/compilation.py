"""``torch.compile`` of the decoder's step, behind the ``train.compile`` and ``decode.compile`` switches.

What gets compiled is the one function the Python-level loops call again and again: the
input-feeding decoder's time step (called once per target position in training and in search),
or the GNMT-style decoder's layer stack.  Only that function is replaced, on the model instance,
so parameter names, ``state_dict`` and checkpoints are exactly those of the eager model.

Shapes are marked dynamic: search drops finished sentences and batches differ in length, and a
shape-specialised graph would recompile for each.

Off by default.  Measured on this 2-core CPU (docs/benchmarks.md, "Speed options"): decoding gains 1.08x in
float32 (identical outputs) and 1.16-1.38x under bf16 autocast, after 7-13 s of compiling per
process, which a one-line ``translate`` never earns back; training gains nothing (0.99x).  On a
GPU, where a step is many small kernel launches, ``reduce-overhead`` (CUDA graphs) is the mode to
try.

Every compiling process gets a TorchInductor cache of its own vector ISA
(:func:`isolate_compile_cache`): PyTorch's cache key leaves out the ISA that ``ATEN_CPU_CAPABILITY``
selects, so a ``numerics=portable`` run (AVX2) and a ``numerics=fast`` run (AVX-512) on one machine
would load each other's kernels; measured here (torch 2.13, AMD EPYC Zen 4): NaN losses or a
segmentation fault.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from s2s.common.compile_modes import compile_mode


def compile_decoder_step(model: torch.nn.Module, setting: Any, key: str = "compile") -> bool:
    """Compile ``model.decoder``'s step function in place when ``setting`` asks for it; True if it did."""
    mode = compile_mode(setting, key)
    if mode is None:
        return False
    isolate_compile_cache()
    model.decoder.compile_step(mode)
    return True


ISA_FOLDER_PREFIX = "isa-"


def isolate_compile_cache() -> Path:
    """Point TorchInductor's cache (``TORCHINDUCTOR_CACHE_DIR``) at a sub-folder named after the vector
    ISA this process compiles for, and return it.

    The ISA is the pair (ATen's capability, ``ATEN_CPU_CAPABILITY``): ATen picks its kernels from
    the first, Inductor its generated code from the second. The base folder is the user's
    ``TORCHINDUCTOR_CACHE_DIR`` or PyTorch's documented default (``<tmp>/torchinductor_<user>``);
    calling again (PyTorch writes the variable back once it has used it) keeps one level.
    """
    base = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if base is None:
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no user name for this uid (a container)
            user = f"uid_{os.getuid()}"
        base = os.path.join(tempfile.gettempdir(), f"torchinductor_{user}")
    folder = Path(base).absolute()
    if folder.name.startswith(ISA_FOLDER_PREFIX):
        folder = folder.parent
    requested = os.environ.get("ATEN_CPU_CAPABILITY") or "auto"
    folder = folder / f"{ISA_FOLDER_PREFIX}{torch.backends.cpu.get_cpu_capability()}-{requested}".lower()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    return folder

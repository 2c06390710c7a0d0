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
"""

from __future__ import annotations

from typing import Any

import torch

from s2s.common.compile_modes import compile_mode


def compile_decoder_step(model: torch.nn.Module, setting: Any, key: str = "compile") -> bool:
    """Compile ``model.decoder``'s step function in place when ``setting`` asks for it; True if it did."""
    mode = compile_mode(setting, key)
    if mode is None:
        return False
    model.decoder.compile_step(mode)
    return True

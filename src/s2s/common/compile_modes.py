"""The ``train.compile`` / ``decode.compile`` vocabulary, without torch.

In ``common`` (not beside :mod:`s2s.inference.compilation`, which applies it with torch) so that
the option table (:mod:`s2s.common.options`), which every stage loads, checks the setting without
importing torch or anything above ``common``.
"""

from __future__ import annotations

from typing import Any

from s2s.common.io import InputError

MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
OFF = ("false", "off", "none")


def compile_mode(setting: Any, key: str = "compile") -> str | None:
    """The ``torch.compile`` mode a setting asks for: false/off (None), true (``default``) or a mode name."""
    value = setting.strip().lower() if isinstance(setting, str) else setting
    if value is None or value is False or value in OFF:
        return None
    if value is True or value == "true":
        return "default"
    if isinstance(value, str) and value in MODES:
        return value
    raise InputError(f"{key}={setting!r}: expected false, true or a torch.compile mode ({', '.join(MODES)})")

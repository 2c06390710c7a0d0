"""Metrics files as DVC reads them: every leaf of a nested JSON object, by its dotted path."""

from __future__ import annotations

from typing import Any


def leaves(obj: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: what ``dvc exp show`` makes a column of."""
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(leaves(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): obj}


def is_number(v: Any) -> bool:
    """A metric DVC can compare and plot (a bool is not one)."""
    return isinstance(v, int | float) and not isinstance(v, bool)

"""The words the option table is written in: a :class:`Rule` says what one option accepts (an
integer in a range, a finite number, one of some values, true or false, text) and how an error
message describes it; :func:`show` writes a value as the user would type it in an override.

Apart from :mod:`s2s.common.options` so that its table (``RULES``) and the rules that relate two
options (:mod:`s2s.common.option_relations`) share them without importing each other.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return (is_int(v) or isinstance(v, float)) and math.isfinite(v)


@dataclass(frozen=True)
class Rule:
    """What one option accepts: a test and the words that describe it in the error message."""

    test: Callable[[Any], bool]
    expected: str
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None:
            return None if self.nullable else f"expected {self.expected}"
        if self.test(value):
            return None
        return f"expected {self.expected}" + (" or null" if self.nullable else "")


def Int(
    low: int | None = None, high: int | None = None, *, also: Sequence[int] = (), nullable: bool = False
) -> Rule:
    """An integer in [``low``, ``high``] (or one of ``also``, e.g. -1 for "no limit")."""
    bounds = [f">= {low}"] if low is not None else []
    bounds += [f"<= {high}"] if high is not None else []
    words = "an integer" + (" " + " and ".join(bounds) if bounds else "") + "".join(f" or {a}" for a in also)

    def test(v: Any) -> bool:
        return is_int(v) and (((low is None or v >= low) and (high is None or v <= high)) or v in also)

    return Rule(test, words, nullable)


def Float(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    nullable: bool = False,
) -> Rule:
    """A finite number in the interval given (``low_open``: ``low`` itself excluded)."""
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high:g}")

    def test(v: Any) -> bool:
        if not is_number(v):
            return False
        if low is not None and (v <= low if low_open else v < low):
            return False
        return high is None or (v < high if high_open else v <= high)

    return Rule(test, "a number" + (" " + " and ".join(parts) if parts else ""), nullable)


def Choice(*values: Any, nullable: bool = False) -> Rule:
    """One of ``values``; compared as text, so ``trainer.precision=32`` and ``'32'`` are the same."""
    allowed = {str(v) for v in values}
    words = "one of " + ", ".join(map(str, values))
    return Rule(lambda v: not isinstance(v, bool) and str(v) in allowed, words, nullable)


def Bool() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "true or false")


def Text(pattern: str = r".+", what: str = "a non-empty string", *, nullable: bool = False) -> Rule:
    rx = re.compile(pattern)
    return Rule(lambda v: isinstance(v, str) and rx.fullmatch(v) is not None, what, nullable)


def show(value: Any) -> str:
    """A value as the user would type it in an override."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)

"""Imports run downward: ``s2s.common`` (and ``s2s.tokens``) import nothing of ``s2s`` above them.

Every stage loads ``common`` (options, io, cli); a ``common`` module that imported ``inference``,
``training`` or ``tracking`` would pull that package, and what it imports, into stages that do not
need it. Read from the code (an ast walk, function-level imports included), so no import runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "src" / "s2s"
BASE = ("s2s.common", "s2s.tokens")  # what the bottom layer may import of s2s
# Known exceptions, each with its reason; a new one needs a reason here.
# op_battery is a measuring tool run as its own process (``python -m s2s.common.op_battery``) that
# checksums the models' own ops; it imports them inside battery() only, so no stage loads them
# through it. (Its place is a question for the next tidy-up, not a stage's import.)
EXCEPTIONS = {"common/op_battery.py": {"s2s.models.dropout", "s2s.models.rnn_threads", "s2s.models.softmax"}}


def s2s_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return {n for n in names if n == "s2s" or n.startswith("s2s.")}


def bottom_layer() -> list[Path]:
    return sorted((PACKAGE / "common").rglob("*.py")) + [PACKAGE / "tokens.py"]


@pytest.mark.parametrize("path", bottom_layer(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_bottom_layer_imports_nothing_above_it(path: Path) -> None:
    allowed = EXCEPTIONS.get(str(path.relative_to(PACKAGE)), set())
    upward = sorted(
        n for n in s2s_imports(path) - allowed if not any(n == b or n.startswith(b + ".") for b in BASE)
    )
    assert not upward, f"{path.relative_to(ROOT)} imports {upward}: move what it needs into s2s.common"


def test_the_walk_sees_imports() -> None:
    # the check can fail: options imports from common, compilation from common
    assert "s2s.common.compile_modes" in s2s_imports(PACKAGE / "common" / "options.py")
    assert "s2s.common.compile_modes" in s2s_imports(PACKAGE / "inference" / "compilation.py")

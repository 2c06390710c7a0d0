"""dvc.yaml's code deps are exactly what each stage imports, so a change re-runs the stages it
affects and no other.

The imports are read from the code (an ast walk from the stage script through ``s2s``, function-
level imports included) and compared with each stage's ``deps``: every imported module must be
covered by a dep (a folder covers the files under it), and every dep must be needed (a folder
only when the stage imports every module in it). Package ``__init__.py`` files hold no code and
are left out of both sides.  Classes named by ``_target_`` in conf/ are imported by
``s2s.models.build`` when it builds a model, so they count as its imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    """The file of a module ``s2s....``: a module file or a package's ``__init__.py``."""
    base = SRC.joinpath(*name.split("."))
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def imported_s2s_modules(path: Path) -> set[str]:
    """Names of the ``s2s`` modules a file imports, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] == "s2s"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "s2s":
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
    return names


def config_targets() -> set[str]:
    """Modules of the classes conf/ names with ``_target_`` (built by ``s2s.models.build``)."""
    names = set()
    for path in (ROOT / "conf").rglob("*.yaml"):
        for line in path.read_text().splitlines():
            key, _, value = line.strip().partition(":")
            if key == "_target_" and value.strip().startswith("s2s."):
                names.add(value.strip().rpartition(".")[0])
    return names


def imports_of(path: Path) -> set[str]:
    names = imported_s2s_modules(path)
    return names | config_targets() if path == SRC / "s2s/models/build.py" else names


def stage_files(script: Path) -> set[Path]:
    """Every ``s2s`` source file the script loads, transitively (parent packages included)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for name in imports_of(todo.pop()):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                f = module_file(".".join(parts[:i]))
                if f is not None and f not in seen:
                    seen.add(f)
                    todo.append(f)
    return {f for f in seen if f.name != "__init__.py"}


def modules_under(dep: Path) -> set[Path]:
    return {p for p in dep.rglob("*.py") if p.name != "__init__.py"} if dep.is_dir() else {dep}


STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_code_deps_are_what_the_stage_imports(stage: str) -> None:
    spec = STAGES[stage]
    script = ROOT / spec["cmd"].split()[1]
    code_deps = [ROOT / d for d in spec["deps"] if str(d).startswith("src/")]
    assert script in code_deps, f"{stage}: the script itself is not a dep"
    needed = stage_files(script)
    covered = set().union(*(modules_under(d) for d in code_deps if d != script))
    missing = sorted(str(f.relative_to(ROOT)) for f in needed - covered)
    assert not missing, f"{stage} imports these, dvc.yaml does not list them: {missing}"
    for dep in code_deps:
        if dep == script:
            continue
        unused = sorted(str(f.relative_to(ROOT)) for f in modules_under(dep) - needed)
        assert not unused, f"{stage}: dep {dep.relative_to(ROOT)} holds modules the stage never imports: {unused}"

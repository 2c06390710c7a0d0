"""Cross-machine check of portable numerics: rerun the tiny pipeline per candidate, compare with every CPU.

``reproducibility/`` holds, for each *candidate* numerics (the default ``portable-avx2`` and the
fallback ``portable-compatible``), one reference per CPU that recorded it: the sha256 of the tiny
pipeline's data, weights, metrics and translations (``tiny-<candidate>.<cpu>.json``), and per CPU
the op battery (``ops.<cpu>.json``, :mod:`s2s.common.op_battery`). Rerunning a candidate here and
finding the same bytes as another CPU's reference is the proof that it holds across the two; the
first file that differs names the stage where they parted, and the battery names the kernel.
A vendor with no reference yet is reported as ``not yet recorded on <vendor>``.

The pipeline itself runs in :mod:`s2s.common.tiny_pipeline`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from s2s.common.io import InputError, write_json_atomic
from s2s.common.tiny_pipeline import CHECKED, ROOT, STAGE_TIMEOUT_S, TINY_OVERRIDES, run_tiny_pipeline

RECORDS = ROOT / "reproducibility"

# the candidate numerics, each with the overrides the tiny pipeline adds and the op battery's
# setting; the first is the default (conf/numerics/portable.yaml)
CANDIDATES: dict[str, dict[str, Any]] = {
    "portable-avx2": {"overrides": (), "branch": "AVX2"},
    "portable-compatible": {
        "overrides": ("numerics.mkl_branch=COMPATIBLE", "numerics.threads=1"),
        "branch": "COMPATIBLE",
    },
    # the default numerics with a tiny Transformer (model=transformer at the tiny preset's widths,
    # 2+2 layers, feed-forward 2x the width) for 1 of the tiny preset's 20 epochs: its attention,
    # layer norms, positions and cached beam search under the same guarantee, at a few minutes' cost
    "portable-avx2-transformer": {
        "overrides": (
            "model=transformer",
            "model.encoder.num_layers=2",
            "model.decoder.num_layers=2",
            "model.encoder.ff_size=64",
            "model.decoder.ff_size=128",
            "trainer.max_epochs=1",
        ),
        "branch": "AVX2",
    },
}

# the vendors a candidate must be recorded on before its "identical where" claim covers x86
VENDORS = {"GenuineIntel": "Intel", "AuthenticAMD": "AMD"}


def this_machine() -> dict[str, Any]:
    """The CPU and the bit-deciding library versions of this machine, as a record names them."""
    from s2s.common.numerics import cpu_flags, cpu_model, cpu_vendor, package_versions

    return {
        "cpu": cpu_model(),
        "vendor": cpu_vendor(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "packages": package_versions(),
    }


def cpu_slug(machine: Mapping[str, Any]) -> str:
    """``amd-avx512``, ``intel-amx``: the vendor and the widest ISA, the name of a CPU's records."""
    vendor = VENDORS.get(str(machine.get("vendor")), str(machine.get("vendor") or "unknown")).lower()
    flags = list(machine.get("cpu_flags") or [])
    isa = "amx" if "amx_tile" in flags else "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "x86"
    return re.sub(r"[^a-z0-9-]+", "-", f"{vendor}-{isa}")


def describe(machine: Mapping[str, Any]) -> str:
    """``Intel(R) Xeon(R) Processor (avx2 avx512f amx_tile)``: the model name can be generic in a VM."""
    flags = " ".join(machine.get("cpu_flags") or [])
    return f"{machine['cpu']} ({flags})" if flags else str(machine["cpu"])


def tiny_reference_path(candidate: str, machine: Mapping[str, Any], records: Path = RECORDS) -> Path:
    return records / f"tiny-{candidate}.{cpu_slug(machine)}.json"


def battery_path(machine: Mapping[str, Any], records: Path = RECORDS) -> Path:
    return records / f"ops.{cpu_slug(machine)}.json"


def load_reference(path: Path) -> dict[str, Any]:
    try:
        reference = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(reference, dict) or not isinstance(reference.get("files"), dict):
            raise TypeError("no 'files' mapping")
        reference["machine"]["cpu"]  # noqa: B018 - the keys a check needs
        overrides = reference["overrides"]
        if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
            raise TypeError("'overrides' is not a list of strings")
    except FileNotFoundError as err:
        raise InputError(f"{path}: no reference checksums (write them with --write)") from err
    except (ValueError, KeyError, TypeError) as err:
        raise InputError(f"{path}: not a reference file ({err})") from err
    return reference


def references(candidate: str, records: Path = RECORDS) -> list[tuple[Path, dict[str, Any]]]:
    """Every committed reference of ``candidate``, one per CPU, sorted by file name."""
    return [(path, load_reference(path)) for path in sorted(records.glob(f"tiny-{candidate}.*.json"))]


def differences(reference: Mapping[str, str], here: Mapping[str, str]) -> list[str]:
    """The checked files whose checksum here differs from the reference's (or is missing on a side)."""
    return [name for name in CHECKED if reference.get(name) != here.get(name)]


def same_cpu(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """The same CPU model with the same ISA flags: where even the fast mode must match."""
    return a.get("cpu") == b.get("cpu") and list(a.get("cpu_flags") or []) == list(b.get("cpu_flags") or [])


def package_changes(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """``numpy 1.26.4 -> 2.1.0``: the bit-deciding packages whose versions differ between two machines."""
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    return [
        f"{name} {pa.get(name)} -> {pb.get(name)}" for name in sorted(set(pa) | set(pb)) if pa.get(name) != pb.get(name)
    ]


# the thread counts the battery measures on every machine (and every core where that is more):
# portable numerics promise the same bits at each; more threads than cores only cost time
BATTERY_THREADS = (1, 2, 4, 8)


def battery_settings(threads: int | None = None) -> list[tuple[str, str, int]]:
    """(key, branch, threads) of every setting the battery measures: each candidate's branch at
    :data:`BATTERY_THREADS` and at ``threads`` (default: every core)."""
    counts = sorted({*BATTERY_THREADS, threads or os.cpu_count() or 1})
    branches = dict.fromkeys(c["branch"] for c in CANDIDATES.values())  # each branch once, in order
    return [(f"{branch}/{t}", branch, t) for branch in branches for t in counts]


def run_battery(branch: str, threads: int) -> dict[str, str]:
    """The op battery under one setting, in a fresh process (the pinning is read at the first op)."""
    cmd = [sys.executable, "-m", "s2s.common.op_battery", "--branch", branch, "--threads", str(threads)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    if threads > (os.cpu_count() or 1):  # oversubscribed: idle threads sleep rather than spin (same bits)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=STAGE_TIMEOUT_S)
    if result.returncode != 0:
        raise RuntimeError(
            f"op battery ({branch}, {threads} threads) exited {result.returncode}:\n{result.stderr[-2000:]}"
        )
    return json.loads(result.stdout)


def first_differing_op(mine: Mapping[str, str], theirs: Mapping[str, str]) -> str | None:
    """The first op (in the battery's order) whose checksum differs between two records."""
    return next((op for op in mine if theirs.get(op) != mine[op]), None)


def thread_culprits(record: Mapping[str, Mapping[str, str]], branch: str) -> list[str]:
    """The ops of ``branch`` whose checksum at N threads differs from 1 thread in a battery record."""
    keys = sorted((k for k in record if k.startswith(f"{branch}/")), key=lambda k: int(k.split("/")[1]))
    if len(keys) < 2:
        return []
    one, *others = (record[k] for k in keys)
    return [op for op in one if any(other.get(op) != one[op] for other in others)]


def _explain(reference: Mapping[str, Any], candidate: str, battery_here: Mapping[str, Mapping[str, str]] | None) -> str:
    """Why a candidate differs from a reference: the packages that changed, else the first differing op."""
    machine = this_machine()
    changed = package_changes(reference["machine"], machine)
    if changed:
        return "packages differ: " + ", ".join(changed)
    theirs_path = battery_path(reference["machine"])
    if battery_here is None or not theirs_path.is_file():
        return f"no op battery recorded for {cpu_slug(reference['machine'])}"
    theirs = json.loads(theirs_path.read_text(encoding="utf-8")).get("settings", {})
    key = f"{CANDIDATES[candidate]['branch']}/1"
    op = first_differing_op(battery_here.get(key, {}), theirs.get(key, {}))
    return (
        f"first differing op of the battery ({key}): {op}"
        if op
        else "the op battery agrees; the difference is elsewhere"
    )


def verify(
    reference_path: Path | None = None,
    *,
    write: bool = False,
    keep: Path | None = None,
    other_cpu_fails: bool = True,
    candidates: Sequence[str] | None = None,
    records: Path = RECORDS,
) -> int:
    """Rerun the tiny pipeline per candidate; print ``matched`` / ``differs: FILE`` / ``not yet recorded``; 0 or 1.

    ``reference_path``: check against that one reference only (its own overrides). ``write``
    records this machine's side instead (every candidate's tiny pipeline and the op battery; with
    ``candidates``, only theirs, and the battery only where this CPU has none yet).
    ``other_cpu_fails=False`` (CI): a difference on a reference's own CPU model is a code change
    that altered results and fails; on another CPU it is printed as a finding and returns 0.
    """
    if reference_path is not None:
        return _verify_one(reference_path, keep=keep, other_cpu_fails=other_cpu_fails)
    names = list(candidates or CANDIDATES)
    for name in names:
        if name not in CANDIDATES:
            raise InputError(f"--candidate {name!r}: expected one of {', '.join(CANDIDATES)}")
    machine = this_machine()
    committed = {name: references(name, records) for name in names}  # broken files refused before any run
    battery_here: dict[str, dict[str, str]] | None = None
    failed = False
    for name in names:
        overrides = [*TINY_OVERRIDES, *CANDIDATES[name]["overrides"]]
        with tempfile.TemporaryDirectory(prefix="s2s-verify-") as scratch:
            base = (keep / name) if keep else Path(scratch)
            here = run_tiny_pipeline(base, overrides)
        if write:
            path = tiny_reference_path(name, machine, records)
            write_json_atomic(path, {"candidate": name, "machine": machine, "overrides": overrides, "files": here})
            print(f"{name}: wrote {path.relative_to(records.parent)} ({describe(machine)})")
            continue
        recorded_vendors = set()
        for path, reference in committed[name]:
            recorded_vendors.add(reference["machine"].get("vendor"))
            where = f"{cpu_slug(reference['machine'])} ({describe(reference['machine'])})"
            differ = differences(reference["files"], here)
            if not differ:
                print(f"{name} vs {where}: matched ({len(here)} files byte-identical)")
                continue
            if battery_here is None:
                battery_here = {key: run_battery(branch, t) for key, branch, t in battery_settings()}
            print(
                f"{name} vs {where}: differs: {differ[0]} ({len(differ)} of {len(CHECKED)} files; "
                f"{_explain(reference, name, battery_here)})"
            )
            if other_cpu_fails or same_cpu(reference["machine"], machine):
                failed = True
            else:
                print(
                    f"warning: {name} did not reproduce {path.name} on this CPU ({describe(machine)}): a finding "
                    "to report, not a failure of this change (on the reference's own CPU model it would be)"
                )
        for vendor, label in VENDORS.items():
            if vendor not in recorded_vendors:
                print(f"{name}: not yet recorded on {label} ({vendor})")
    if write:
        path = battery_path(machine, records)
        if candidates and path.is_file():
            print(f"op battery: kept {path.relative_to(records.parent)} (--write without --candidate rewrites it)")
            return 0
        settings = {key: run_battery(branch, t) for key, branch, t in battery_settings()}
        write_json_atomic(path, {"machine": machine, "settings": settings})
        for branch in dict.fromkeys(c["branch"] for c in CANDIDATES.values()):
            culprits = thread_culprits(settings, branch)
            print(f"op battery, {branch}: ops that change with the thread count: {culprits or 'none'}")
        print(f"wrote {path.relative_to(records.parent)}")
    return 1 if failed else 0


def _verify_one(path: Path, *, keep: Path | None, other_cpu_fails: bool) -> int:
    """Rerun the tiny pipeline with one reference's overrides and compare with it."""
    reference = load_reference(path)
    with tempfile.TemporaryDirectory(prefix="s2s-verify-") as scratch:
        here = run_tiny_pipeline(keep or Path(scratch), list(reference["overrides"]))
    machine = this_machine()
    cpus = f"reference CPU: {describe(reference['machine'])}; this CPU: {describe(machine)}"
    differ = differences(reference["files"], here)
    if not differ:
        print(f"matched: {len(here)} files byte-identical ({cpus})")
        return 0
    for name in differ:
        print(
            f"differs: {name} (reference {reference['files'].get(name, 'missing')[:12]}, "
            f"here {here.get(name, 'missing')[:12]}; {cpus})"
        )
    if other_cpu_fails or same_cpu(reference["machine"], machine):
        return 1
    print(
        "warning: portable numerics did not reproduce the reference on this CPU: a finding to report, "
        "not a failure of this change (on the reference's own CPU model it would be)"
    )
    return 0


def identical_where(records: Path = RECORDS) -> str:
    """The "identical where" table of docs/reproducibility.md, from the committed records only (markdown)."""
    rows = [
        "| candidate | CPU (record) | tiny pipeline | ops that change with the thread count |",
        "| --- | --- | --- | --- |",
    ]
    for name, spec in CANDIDATES.items():
        refs = references(name, records)
        files = {tuple(sorted(r["files"].items())) for _, r in refs}
        for path, ref in refs:
            battery = battery_path(ref["machine"], records)
            culprits = (
                thread_culprits(json.loads(battery.read_text(encoding="utf-8"))["settings"], spec["branch"])
                if battery.is_file()
                else ["no battery record"]
            )
            same = (
                "same bytes as every other CPU's record"
                if len(files) == 1 and len(refs) > 1
                else ("the only record so far" if len(refs) == 1 else "differs from another CPU's record")
            )
            rows.append(
                f"| {name} | {describe(ref['machine'])} (`{path.name}`) | {same} | {', '.join(culprits) or 'none'} |"
            )
        recorded = {r["machine"].get("vendor") for _, r in refs}
        for vendor, label in VENDORS.items():
            if vendor not in recorded:
                rows.append(f"| {name} | {label}: not yet recorded | | |")
    return "\n".join(rows)

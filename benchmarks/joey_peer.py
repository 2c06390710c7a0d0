"""The Joey NMT 2.3.0 peer as the side-by-side benchmarks run it: where it lives, its YAML, what
it needs installed, and the thread settings of a child process (bench_joey.py, bench_joey_decode.py)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from s2s.common.io import InputError, write_json_atomic

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "joeynmt"
PEER_WORK = "/tmp/joeypeer"  # the prefix of every path in the peer YAML


class RunError(Exception):
    """A measured job failed or never got far enough."""


def rebase(value: Any, work: str) -> Any:
    """The peer YAML with its /tmp/joeypeer paths moved to ``work``."""
    if isinstance(value, dict):
        return {k: rebase(v, work) for k, v in value.items()}
    if isinstance(value, str) and value.startswith(PEER_WORK):
        return work + value[len(PEER_WORK) :]
    return value


def peer_config(peer: Path, work: Path) -> dict:
    """The peer's ``rnn_multi30k_ende.yaml`` with its paths under ``work``."""
    return rebase(yaml.safe_load((peer / "rnn_multi30k_ende.yaml").read_text()), str(work))


def check_peer(peer: Path, work: Path, data_files: tuple[str, ...]) -> None:
    """Raise InputError naming the first missing piece of the peer and the command that creates it."""
    run_sh = peer / "run.sh"
    setup = f"WORK={work} bash {run_sh} setup"
    prepare = f"WORK={work} bash {run_sh} prepare"
    if not (peer / "rnn_multi30k_ende.yaml").is_file():
        raise InputError(f"Joey peer config missing: {peer / 'rnn_multi30k_ende.yaml'} (pass --peer)")
    python = work / "venv" / "bin" / "python"
    if not python.is_file():
        raise InputError(f"Joey NMT venv missing: {python} (create it with: {setup})")
    if not list((work / "venv" / "lib").glob("python*/site-packages/joeynmt/__init__.py")):
        raise InputError(f"joeynmt not installed in {work / 'venv'} (install it with: {setup})")
    for need in ("pylib/sentencepiece", *data_files, "data/vocab.txt", "data/spm8k.model"):
        if not (work / need).exists():
            raise InputError(f"Joey data missing: {work / need} (create it with: {prepare})")


def check_prepared(data: Path, files: tuple[str, ...]) -> None:
    """Raise InputError naming the first of our prepared files missing from ``data``."""
    for need in files:
        if not (data / need).is_file():
            raise InputError(
                f"our prepared data missing: {data / need} "
                "(run the preprocess stage, `dvc repro preprocess`, or pass --data)"
            )


def thread_env(threads: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the BLAS/OpenMP thread count set (and ``extra``)."""
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    env.update(extra or {})
    return env


def measure_and_report(
    args: argparse.Namespace, measure: Callable[[argparse.Namespace], dict], show: Callable[[dict], None]
) -> int:
    """Run ``measure``, write its report to ``args.out`` atomically with the wall time, print it.

    Exit codes: 0 done, 1 a measured job failed (:class:`RunError`, one line on stderr).
    """
    start = time.perf_counter()
    try:
        report = measure(args)
    except RunError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    report["wall_seconds"] = round(time.perf_counter() - start, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(args.out, report)
    show(report)
    print(f"written to {args.out} ({report['wall_seconds']:.0f} s)")
    return 0

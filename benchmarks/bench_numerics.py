"""What portable numerics cost: training tokens/s and beam-5 sentences/s, side by side with native fp32 and fast.

Four variants, each at 1 thread and at every core:
- ``portable``: the default (MKL's AVX2 branch in strict mode, ATen AVX2, oneDNN capped, fp32);
- ``portable-compatible``: the fallback (MKL's COMPATIBLE branch, otherwise the same);
- ``fp32-native``: every library on its native kernels, still fp32 (numerics=fast, precision 32);
- ``fast``: native kernels and bf16 autocast (numerics=fast as shipped).
The target of issue 32 is ``portable / fp32-native >= 0.9`` at equal threads.

The kernels are fixed at a process's first tensor operation, so each measurement is a fresh
``bench_train.py`` / ``bench_decode.py`` process; the variants alternate for ``--rounds`` rounds so
they see the same machine load, and each ratio is the median of the per-round ratios. Usage (after
``dvc repro preprocess``; ``--random-model`` decodes with an untrained model):

    python benchmarks/bench_numerics.py --rounds 2 --random-model [--out reports/bench_numerics.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name: (bench_train overrides, bench_decode arguments)
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "portable": (["numerics=portable"], ["--numerics", "portable", "--mkl-branch", "AVX2", "--precision", "32"]),
    "portable-compatible": (
        ["numerics=portable", "numerics.mkl_branch=COMPATIBLE", "numerics.threads=1"],
        ["--numerics", "portable", "--mkl-branch", "COMPATIBLE", "--precision", "32"],
    ),
    "fp32-native": (
        ["numerics=fast", "trainer.precision=32-true", "decode.precision=32"],
        ["--numerics", "fast", "--precision", "32"],
    ),
    "fast": (["numerics=fast"], ["--numerics", "fast", "--precision", "bf16"]),
}
BASELINE = "fp32-native"


def run_json(cmd: list[str]) -> dict:
    """Run a benchmark script that writes its result to ``--out``; return that JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        result = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} exited {result.returncode}: {result.stderr.strip()[-1500:]}")
        return json.loads(out.read_text())


def train_rate(variant: str, threads: int, args: argparse.Namespace) -> float:
    overrides = [o for o in VARIANTS[variant][0] if not (threads > 1 and o == "numerics.threads=1")]
    cmd = [sys.executable, str(HERE / "bench_train.py"), *overrides, "--threads", str(threads),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--window", str(args.window)]
    return run_json(cmd)["target_tokens_per_sec"]


def decode_rate(variant: str, threads: int, args: argparse.Namespace) -> float:
    cmd = [sys.executable, str(HERE / "bench_decode.py"), *VARIANTS[variant][1], "--threads", str(threads),
           "--single", "1", "--limit", str(args.sentences)]
    cmd += ["--random-model"] if args.random_model else ["--model", args.model, "--data", args.data]
    return run_json(cmd)["results"]["beam_batched"]["sentences_per_sec"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, nargs="+", default=sorted({1, os.cpu_count() or 1}),
                    help="thread counts to measure (default: 1 and every core)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--sentences", type=int, default=300, help="test sentences decoded per measurement")
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--data", default="data/prepared")
    ap.add_argument("--random-model", action="store_true", help="decode with an untrained model, random sources")
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args()

    rounds: list[dict[str, dict[str, float]]] = []
    for i in range(args.rounds):
        row: dict[str, dict[str, float]] = {}
        for threads in args.threads:
            for m in args.variants:
                row[f"{m}/{threads}"] = {"train_tokens_per_sec": train_rate(m, threads, args),
                                         "beam5_sentences_per_sec": decode_rate(m, threads, args)}
                r = row[f"{m}/{threads}"]
                print(f"round {i + 1} {m}/{threads}: {r['train_tokens_per_sec']:.0f} tok/s, "
                      f"{r['beam5_sentences_per_sec']:.1f} sent/s", flush=True)
        rounds.append(row)
    summary: dict[str, dict[str, float]] = {}
    for key in ("train_tokens_per_sec", "beam5_sentences_per_sec"):
        summary[key] = {name: round(statistics.median(r[name][key] for r in rounds), 1) for name in rounds[0]}
        for threads in args.threads:
            base = f"{BASELINE}/{threads}"
            if base not in rounds[0]:
                continue
            for m in args.variants:
                name = f"{m}/{threads}"
                ratio = round(statistics.median(r[name][key] / r[base][key] for r in rounds), 3)
                summary[key][f"{name} / {base}"] = ratio
            print(f"{key}, {threads} thread(s): " + ", ".join(
                f"{m} {summary[key][f'{m}/{threads}']} ({summary[key][f'{m}/{threads} / {base}']:.2f}x)"
                for m in args.variants))
        if len(args.threads) > 1:
            lo, hi = min(args.threads), max(args.threads)
            for m in args.variants:
                summary[key][f"{m}/{hi} / {m}/{lo}"] = round(
                    statistics.median(r[f"{m}/{hi}"][key] / r[f"{m}/{lo}"][key] for r in rounds), 3)
    report = {"threads": args.threads, "cpu": _cpu(), "rounds": rounds, "summary": summary,
              "decode": "random model" if args.random_model else args.model}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


def _cpu() -> str:
    sys.path.insert(0, str(HERE.parent / "src"))
    from s2s.common.numerics import cpu_flags, cpu_model

    return f"{cpu_model()} ({' '.join(cpu_flags())}), {os.cpu_count()} cores"


if __name__ == "__main__":
    main()

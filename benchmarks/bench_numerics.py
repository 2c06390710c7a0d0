"""What portable numerics cost: training tokens/s and beam-5 sentences/s, portable against fast.

Three variants: portable (MKL's COMPATIBLE branch: Intel and AMD alike), portable with MKL's AVX2
branch (Intel CPUs only) and fast (bf16, native kernels).

The two modes cannot share a process (the kernels are fixed at the first tensor operation), so
each measurement is a fresh `bench_train.py` / `bench_decode.py` process; the modes alternate for
``--rounds`` rounds, so both see the same machine load, and the ratio is the median of the
per-round ratios. Usage (after `dvc repro preprocess`, with a trained `models/model.pt`, or
``--random-model`` for decoding without one):

    python benchmarks/bench_numerics.py --rounds 3 --threads 1 [--out reports/bench_numerics.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
# name: (numerics mode, MKL branch of portable mode)
VARIANTS = {"portable": ("portable", "COMPATIBLE"), "portable-avx2": ("portable", "AVX2"), "fast": ("fast", None)}


def run_json(cmd: list[str]) -> dict:
    """Run a benchmark script that writes its result to ``--out``; return that JSON."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        result = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=3600)
        if result.returncode != 0:
            sys.exit(f"error: {' '.join(cmd)} exited {result.returncode}: {result.stderr.strip()[-1500:]}")
        return json.loads(out.read_text())


def train_rate(variant: str, args: argparse.Namespace) -> float:
    mode, branch = VARIANTS[variant]
    cmd = [sys.executable, str(HERE / "bench_train.py"), f"numerics={mode}", "--threads", str(args.threads),
           *([f"numerics.mkl_branch={branch}"] if branch else []),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--window", str(args.window)]
    return run_json(cmd)["target_tokens_per_sec"]


def decode_rate(variant: str, args: argparse.Namespace) -> float:
    mode, branch = VARIANTS[variant]
    cmd = [sys.executable, str(HERE / "bench_decode.py"), "--numerics", mode, "--threads", str(args.threads),
           *(["--mkl-branch", branch] if branch else []),
           "--precision", "32" if mode == "portable" else "bf16", "--single", "1", "--limit", str(args.sentences)]
    cmd += ["--random-model"] if args.random_model else ["--model", args.model, "--data", args.data]
    return run_json(cmd)["results"]["beam_batched"]["sentences_per_sec"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--sentences", type=int, default=1000, help="test sentences decoded per measurement")
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--data", default="data/prepared")
    ap.add_argument("--random-model", action="store_true", help="decode with an untrained model, random sources")
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args()

    rounds: list[dict[str, dict[str, float]]] = []
    for i in range(args.rounds):
        row = {m: {"train_tokens_per_sec": train_rate(m, args), "beam5_sentences_per_sec": decode_rate(m, args)}
               for m in VARIANTS}
        rounds.append(row)
        figures = [f"{m} {r['train_tokens_per_sec']:.0f} tok/s, {r['beam5_sentences_per_sec']:.1f} sent/s"
                   for m, r in row.items()]
        print(f"round {i + 1}: " + "; ".join(figures), flush=True)
    summary = {}
    for key in ("train_tokens_per_sec", "beam5_sentences_per_sec"):
        summary[key] = {m: statistics.median(r[m][key] for r in rounds) for m in VARIANTS}
        for m in VARIANTS:
            if m == "fast":
                continue
            ratios = [r[m][key] / r["fast"][key] for r in rounds]
            summary[key][f"ratio_{m}_over_fast"] = round(statistics.median(ratios), 3)
            summary[key][f"ratios_{m}_over_fast_per_round"] = [round(x, 3) for x in ratios]
            row = summary[key]
            print(f"{key}: {m} {row[m]:.1f}, fast {row['fast']:.1f}, {m} / fast "
                  f"{row[f'ratio_{m}_over_fast']:.3f} (rounds {row[f'ratios_{m}_over_fast_per_round']})")
    report = {"threads": args.threads, "rounds": rounds, "summary": summary,
              "decode": "random model" if args.random_model else args.model}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

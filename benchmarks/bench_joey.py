"""Training throughput of our default model next to Joey NMT 2.3.0's, measured side by side in one run.

Why one script and one run: timings on this shared 2-core machine drift by 15-30% between
back-to-back runs (the peer's RESULTS.md), so a figure of ours and a figure of Joey's taken on
different days say little about which toolkit is faster.  Here both are measured in one
invocation, in rounds that alternate Joey fp32, ours fp32 (``32-true``) and ours bf16
(``bf16-mixed``), so drift hits all three; each job runs alone (two 2-thread torch processes on
2 cores slow each other down about 30x).

What is compared: target tokens per second of training (non-pad target tokens including EOS, the
count both toolkits use), batch 64 sentences, 2 threads, the same architecture (BiLSTM encoder,
LSTM decoder, additive attention, input feeding; Joey's ``rnn_multi30k_ende.yaml``).

- Ours: ``benchmarks/bench_train.py`` (the real Lightning Trainer) in a child process, the median
  of ``--windows`` windows of ``--window`` steps after one window of warm-up.  Its clock runs from
  batch start to batch end, so it leaves out fetching the (pre-encoded, in-memory) batch.
- Joey: its own ``joeynmt train`` on a copy of the peer YAML with ``logging_freq = --window`` and
  no validation, stopped once its ``train.log`` shows ``1 + --windows`` "Tokens per Sec" lines (the
  first is dropped as warm-up).  Joey's clock is wall time over the window, so it includes its
  on-the-fly SentencePiece encoding and batching.  Joey 2.3.0 has no step budget to rely on,
  hence the wait on its log, bounded by ``--joey-deadline``.

Batches differ by design, as in each toolkit's real training: ours groups sentences of similar
length (little padding), Joey's are random (more padding per target token).

Usage:
    python benchmarks/bench_joey.py                     # 3 rounds, about 11 minutes here
    python benchmarks/bench_joey.py --rounds 1 --windows 2   # smoke run, about 3 minutes
Prerequisites (the peer's own venv and data, under --work):
    WORK=/tmp/joeypeer bash ../shared/peers/joeynmt/run.sh setup      # from the project root
    WORK=/tmp/joeypeer bash ../shared/peers/joeynmt/run.sh prepare
    dvc repro preprocess                                              # our data/prepared
Writes --out (JSON, atomically) and prints a table: ours / Joey's, ratio ours/Joey.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from joey_peer import (  # noqa: E402
    PEER,
    PEER_WORK,
    RunError,
    check_peer,
    check_prepared,
    measure_and_report,
    peer_config,
    thread_env,
)

from s2s.common.io import InputError  # noqa: E402

TOKPS = re.compile(r"Step:\s*(\d+),.*Tokens per Sec:\s*([0-9.]+)")
PARAMS = re.compile(r"Total params:\s*(\d+)")
PRECISIONS = ("32-true", "bf16-mixed")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of Joey fp32, ours fp32, ours bf16")
    ap.add_argument("--window", type=int, default=10, help="steps per measured window (Joey's logging_freq)")
    ap.add_argument("--windows", type=int, default=8, help="measured windows per job, after one warm-up window")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path(PEER_WORK), help="the peer's WORK folder (venv, data)")
    ap.add_argument("--peer", type=Path, default=PEER, help="the peer's folder (rnn_multi30k_ende.yaml, run.sh)")
    ap.add_argument(
        "--data",
        type=Path,
        default=ROOT / "data" / "prepared",
        help="our prepared data for the default config, read only (`dvc repro preprocess`)",
    )
    ap.add_argument(
        "--joey-deadline",
        type=float,
        default=900.0,
        help="seconds one Joey job may take to log its windows before it counts as failed",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_joey.json")
    args = ap.parse_args()
    if min(args.rounds, args.window, args.windows, args.threads) < 1:
        raise InputError("--rounds, --window, --windows and --threads must be at least 1")
    return args


def check_inputs(args: argparse.Namespace) -> None:
    """Raise InputError naming the first missing prerequisite and the command that creates it."""
    check_peer(args.peer, args.work, ("data/train.en", "data/train.de"))
    check_prepared(args.data, ("train.npz", "valid.npz", "valid.tsv", "spm.model"))


def joey_config(args: argparse.Namespace, model_dir: Path, path: Path) -> Path:
    """A copy of the peer YAML: logging every --window steps, no validation, its own model_dir."""
    cfg = peer_config(args.peer, args.work)
    cfg["model_dir"] = str(model_dir)
    train = cfg["training"]
    train.update(logging_freq=args.window, validation_freq=10**9, overwrite=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def joey_windows(log: Path) -> tuple[list[float], int | None]:
    """The "Tokens per Sec" figures logged so far, and Joey's parameter count once it has logged it."""
    if not log.is_file():
        return [], None
    text = log.read_text(errors="replace")
    params = PARAMS.search(text)
    return [float(m.group(2)) for m in TOKPS.finditer(text)], int(params.group(1)) if params else None


def peak_rss_mib(pid: int) -> float | None:
    """VmHWM of a live process (its peak resident memory so far), in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def stop(proc: subprocess.Popen) -> None:
    """End the Joey job this script started (its own process group), politely first."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def run_joey(args: argparse.Namespace, tmp: Path) -> dict:
    """One Joey training job, until its log shows 1 + --windows windows; ends it then."""
    model_dir = args.work / "bench_joey_model"
    cfg = joey_config(args, model_dir, tmp / "joey.yaml")
    log, stderr = model_dir / "train.log", tmp / "joey.stderr"
    if log.exists():
        log.unlink()  # a previous job's log must not count as progress
    env = thread_env(args.threads, {"PYTHONPATH": str(args.work / "pylib")})
    cmd = [str(args.work / "venv" / "bin" / "python"), "-m", "joeynmt", "train", str(cfg)]
    need = args.windows + 1
    deadline = time.monotonic() + args.joey_deadline
    with open(stderr, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
    try:
        while True:
            figures, params = joey_windows(log)
            if len(figures) >= need:
                rss = peak_rss_mib(proc.pid)
                break
            if proc.poll() is not None:
                tail = stderr.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
                raise RunError(
                    f"Joey exited with code {proc.returncode} after {len(figures)} of {need} windows: {tail[0]}"
                )
            if time.monotonic() > deadline:
                raise RunError(
                    f"Joey logged {len(figures)} of {need} windows in {args.joey_deadline:.0f} s "
                    f"(see {log}; raise --joey-deadline)"
                )
            time.sleep(1.0)  # poll the log for the next window; progress is read, never assumed
    finally:
        stop(proc)
    measured = figures[1:need]
    return {
        "target_tokens_per_sec": round(statistics.median(measured), 1),
        "windows": measured,
        "parameters": params,
        "peak_rss_mib": rss,
    }


def run_ours(args: argparse.Namespace, precision: str, tmp: Path) -> dict:
    """One bench_train.py job (child process, its own peak memory) on the default config."""
    out = tmp / "ours.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_train.py"),
        "--steps",
        str(args.window * args.windows),
        "--warmup",
        str(args.window),
        "--window",
        str(args.window),
        "--threads",
        str(args.threads),
        "--device",
        "cpu",
        "--out",
        str(out),
        f"trainer.precision={precision}",
        f"paths.prepared_dir={args.data}",
        "train.batch.max_sentences=64",
        "train.batch.max_tokens=null",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=thread_env(args.threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RunError(f"bench_train.py {precision} exited with code {proc.returncode}: {tail[0]}")
    return json.loads(out.read_text())


def summarize(rounds: list[dict]) -> dict:
    """Per job kind: median of the per-round medians, range over all windows, ratio to Joey."""
    joey = [r["joey"]["target_tokens_per_sec"] for r in rounds]
    summary: dict[str, dict] = {
        "joey 32-true": {
            "target_tokens_per_sec": round(statistics.median(joey), 1),
            "range": [min(min(r["joey"]["windows"]) for r in rounds), max(max(r["joey"]["windows"]) for r in rounds)],
            "per_round": joey,
            "peak_rss_mib": max((r["joey"]["peak_rss_mib"] or 0) for r in rounds) or None,
            "parameters": rounds[0]["joey"]["parameters"],
        }
    }
    for precision in PRECISIONS:
        ours = [r[precision] for r in rounds]
        tps = [o["target_tokens_per_sec"] for o in ours]
        summary[f"ours {precision}"] = {
            "target_tokens_per_sec": round(statistics.median(tps), 1),
            "range": [
                min(o["target_tokens_per_sec_range"][0] for o in ours),
                max(o["target_tokens_per_sec_range"][1] for o in ours),
            ],
            "per_round": tps,
            "ratio_ours_over_joey": round(statistics.median(tps) / statistics.median(joey), 3),
            "ratio_per_round": [round(t / j, 3) for t, j in zip(tps, joey)],
            "peak_rss_mib": max(o["peak_rss_mib"] for o in ours),
            "parameters": ours[0]["parameters"],
        }
    return summary


def print_table(summary: dict) -> None:
    joey = summary["joey 32-true"]
    print(f"{'training, target tokens/s (2 threads, batch 64)':<48}{'ours':>12}{'Joey 2.3.0':>14}{'ours/Joey':>11}")
    for precision in PRECISIONS:
        ours = summary[f"ours {precision}"]
        print(
            f"{'median, ours ' + precision + ' vs Joey fp32':<48}{ours['target_tokens_per_sec']:>12.0f}"
            f"{joey['target_tokens_per_sec']:>14.0f}{ours['ratio_ours_over_joey']:>11.2f}"
        )
        ours_range, joey_range = (f"{lo:.0f}-{hi:.0f}" for lo, hi in (ours["range"], joey["range"]))
        print(f"{'  range over windows':<48}{ours_range:>12}{joey_range:>14}")
        per_round = ", ".join(f"{r:.2f}" for r in ours["ratio_per_round"])
        print(f"{'  ratio per round':<48}{per_round:>37}")
    for precision in PRECISIONS:
        ours = summary[f"ours {precision}"]
        joey_rss = f"{joey['peak_rss_mib']:.0f}" if joey["peak_rss_mib"] else "-"
        rss_ratio = f"{ours['peak_rss_mib'] / joey['peak_rss_mib']:.2f}" if joey["peak_rss_mib"] else "-"
        print(f"{'peak RSS MiB, ours ' + precision:<48}{ours['peak_rss_mib']:>12.0f}{joey_rss:>14}{rss_ratio:>11}")
    print(f"{'parameters':<48}{summary['ours 32-true']['parameters']:>12,}{joey['parameters'] or 0:>14,}")


def measure(args: argparse.Namespace) -> dict:
    """The alternating rounds; each job alone, in the order Joey fp32, ours fp32, ours bf16."""
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            result = {"joey": run_joey(args, Path(tmp))}
            for precision in PRECISIONS:
                result[precision] = run_ours(args, precision, Path(tmp))
            rounds.append(result)
            print(
                f"round {n + 1}/{args.rounds}: Joey fp32 {result['joey']['target_tokens_per_sec']:.0f}, "
                f"ours fp32 {result['32-true']['target_tokens_per_sec']:.0f}, "
                f"ours bf16 {result['bf16-mixed']['target_tokens_per_sec']:.0f} target tokens/s",
                flush=True,
            )
    return {
        "threads": args.threads,
        "batch_sentences": 64,
        "window_steps": args.window,
        "windows_per_job": args.windows,
        "rounds": rounds,
        "summary": summarize(rounds),
    }


def main() -> int:
    try:
        args = parse_args()
        check_inputs(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return measure_and_report(args, measure, lambda report: print_table(report["summary"]))


if __name__ == "__main__":
    sys.exit(main())

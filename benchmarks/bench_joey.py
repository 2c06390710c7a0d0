"""Training throughput of our model next to Joey NMT 2.3.0's, the same architecture, side by side in one run.

Why one script and one run: timings on this shared 2-core machine drift by 15-30% between
back-to-back runs (the peer's RESULTS.md), so a figure of ours and a figure of Joey's taken on
different days say little about which toolkit is faster.  Here both are measured in one
invocation, in rounds that alternate Joey fp32 and each of our variants (``--ours``; by default
fp32 ``32-true`` and bf16 ``bf16-mixed``, both in the default portable numerics; ``fp32-native`` is
fp32 on the libraries' native kernels, ``numerics=fast trainer.precision=32-true``, as Joey runs),
so drift hits all of them; each job runs alone (two 2-thread torch processes on 2 cores slow each
other down about 30x).

What is compared: target tokens per second of training (non-pad target tokens including EOS, the
count both toolkits use), batch 64 sentences, ``--threads`` threads, the same architecture
(``--model``):

- ``rnn`` (default): our default ``bilstm_attn`` against the peer's own ``rnn_multi30k_ende.yaml``
  (BiLSTM encoder, LSTM decoder, additive attention, input feeding);
- ``transformer``: our ``model=transformer`` recipe against
  ``benchmarks/joey_transformer_multi30k_ende.yaml``, the same recipe in Joey's keys (3+3 pre-norm
  layers, d 256, 4 heads, FF 1024, tied embeddings, label smoothing 0.1, Adam with inverse-square-root
  warmup); checked against our composed config before anything runs (``recipe_mismatches``).

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
    python benchmarks/bench_joey.py --model transformer --ours 32-true,fp32-native   # the Transformers
Prerequisites (the peer's own venv and data, under --work):
    WORK=/tmp/joeypeer bash ../shared/peers/joeynmt/run.sh setup      # from the project root
    WORK=/tmp/joeypeer bash ../shared/peers/joeynmt/run.sh prepare
    dvc repro preprocess                                              # our data/prepared
Writes --out (JSON, atomically; default reports/bench_joey.json, reports/bench_joey_transformer.json
for the Transformer) and prints a table: ours / Joey's, ratio ours/Joey.
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
    joey_yaml,
    measure_and_report,
    peer_config,
    recipe_mismatches,
    thread_env,
)

from s2s.common.io import InputError  # noqa: E402
from s2s.common.numerics import cpu_model  # noqa: E402

TOKPS = re.compile(r"Step:\s*(\d+),.*Tokens per Sec:\s*([0-9.]+)")
PARAMS = re.compile(r"Total params:\s*(\d+)")
# --model -> our model config of the same architecture as Joey's YAML for it
OUR_MODELS = {"rnn": "bilstm_attn", "transformer": "transformer"}
# --ours variant -> bench_train.py overrides (the default numerics are portable)
VARIANTS = {
    "32-true": ["trainer.precision=32-true"],
    "bf16-mixed": ["trainer.precision=bf16-mixed"],
    "fp32-native": ["numerics=fast", "trainer.precision=32-true"],
}


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=sorted(OUR_MODELS), default="rnn", help="the architecture both run")
    ap.add_argument(
        "--ours",
        default="32-true,bf16-mixed",
        help=f"our variants, comma-separated, run after Joey in each round: {', '.join(VARIANTS)}",
    )
    ap.add_argument("--rounds", type=int, default=3, help="rounds of Joey fp32, then each of --ours")
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
    ap.add_argument("--out", type=Path, help="default: reports/bench_joey.json (rnn), bench_joey_transformer.json")
    args = ap.parse_args()
    if min(args.rounds, args.window, args.windows, args.threads) < 1:
        raise InputError("--rounds, --window, --windows and --threads must be at least 1")
    args.ours = [v for v in args.ours.split(",") if v]
    unknown = [v for v in args.ours if v not in VARIANTS]
    if unknown or not args.ours:
        raise InputError(f"--ours {','.join(unknown) or '(none)'}: expected some of {', '.join(VARIANTS)}")
    name = "bench_joey.json" if args.model == "rnn" else f"bench_joey_{args.model}.json"
    args.out = args.out or ROOT / "reports" / name
    return args


def check_inputs(args: argparse.Namespace) -> None:
    """Raise InputError naming the first missing prerequisite and the command that creates it."""
    check_peer(args.peer, args.work, ("data/train.en", "data/train.de"))
    check_prepared(args.data, ("train.npz", "valid.npz", "valid.tsv", "spm.model"))
    if args.model == "transformer":
        check_recipe(args.peer, args.model)


def check_recipe(peer: Path, model: str) -> None:
    """Raise InputError if Joey's YAML of ``model`` is not our composed ``model=...`` recipe."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"model={OUR_MODELS[model]}"])
    ours = OmegaConf.to_container(cfg, resolve=True)
    path = joey_yaml(peer, model)
    mismatches = recipe_mismatches(ours, yaml.safe_load(path.read_text()))
    if mismatches:
        raise InputError(f"{path} is not our recipe: " + "; ".join(mismatches))


def train_config(cfg: dict, model_dir: Path, window: int) -> dict:
    """A Joey YAML (``cfg``, left as it is) for throughput: logging every ``window`` steps, no
    validation, its own ``model_dir``, overwritten."""
    out = {**cfg, "model_dir": str(model_dir), "training": dict(cfg["training"])}
    out["training"].update(logging_freq=window, validation_freq=10**9, overwrite=True)
    return out


def joey_config(args: argparse.Namespace, model_dir: Path, path: Path) -> Path:
    """The Joey YAML of --model (:func:`train_config`), written to ``path``."""
    cfg = train_config(peer_config(args.peer, args.work, args.model), model_dir, args.window)
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


def run_ours(args: argparse.Namespace, variant: str, tmp: Path) -> dict:
    """One bench_train.py job (child process, its own peak memory) of our --model in ``variant``."""
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
        f"model={OUR_MODELS[args.model]}",
        *VARIANTS[variant],
        f"paths.prepared_dir={args.data}",
        "train.batch.max_sentences=64",
        "train.batch.max_tokens=null",
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=thread_env(args.threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise RunError(f"bench_train.py {variant} exited with code {proc.returncode}: {tail[0]}")
    return json.loads(out.read_text())


def summarize(rounds: list[dict], variants: list[str]) -> dict:
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
    for variant in variants:
        ours = [r[variant] for r in rounds]
        tps = [o["target_tokens_per_sec"] for o in ours]
        summary[f"ours {variant}"] = {
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


def print_table(report: dict) -> None:
    summary, variants = report["summary"], report["ours_variants"]
    joey = summary["joey 32-true"]
    threads = f"{report['threads']} thread" + ("s" if report["threads"] != 1 else "")
    head = f"training {report['model']}, target tokens/s ({threads}, batch 64)"
    print(f"{head:<52}{'ours':>12}{'Joey 2.3.0':>14}{'ours/Joey':>11}")
    for variant in variants:
        ours = summary[f"ours {variant}"]
        print(
            f"{'median, ours ' + variant + ' vs Joey fp32':<52}{ours['target_tokens_per_sec']:>12.0f}"
            f"{joey['target_tokens_per_sec']:>14.0f}{ours['ratio_ours_over_joey']:>11.2f}"
        )
        ours_range, joey_range = (f"{lo:.0f}-{hi:.0f}" for lo, hi in (ours["range"], joey["range"]))
        print(f"{'  range over windows':<52}{ours_range:>12}{joey_range:>14}")
        per_round = ", ".join(f"{r:.2f}" for r in ours["ratio_per_round"])
        print(f"{'  ratio per round':<52}{per_round:>37}")
    for variant in variants:
        ours = summary[f"ours {variant}"]
        joey_rss = f"{joey['peak_rss_mib']:.0f}" if joey["peak_rss_mib"] else "-"
        rss_ratio = f"{ours['peak_rss_mib'] / joey['peak_rss_mib']:.2f}" if joey["peak_rss_mib"] else "-"
        print(f"{'peak RSS MiB, ours ' + variant:<52}{ours['peak_rss_mib']:>12.0f}{joey_rss:>14}{rss_ratio:>11}")
    print(f"{'parameters':<52}{summary[f'ours {variants[0]}']['parameters']:>12,}{joey['parameters'] or 0:>14,}")
    load = ", ".join(f"{a:.1f}" for a in report["load_average_start"])
    print(f"{report['cpu']}; load average at the start (1, 5, 15 min): {load}")


def project_path(path: Path) -> str:
    """``path`` relative to the project root when inside it (a report names no checkout), else as is."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def measure(args: argparse.Namespace) -> dict:
    """The alternating rounds; each job alone, in the order Joey fp32, then each of --ours."""
    rounds: list[dict] = []
    load_start = [round(a, 2) for a in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            result = {"joey": run_joey(args, Path(tmp))}
            for variant in args.ours:
                result[variant] = run_ours(args, variant, Path(tmp))
            rounds.append(result)
            ours = ", ".join(f"ours {v} {result[v]['target_tokens_per_sec']:.0f}" for v in args.ours)
            print(
                f"round {n + 1}/{args.rounds}: Joey fp32 {result['joey']['target_tokens_per_sec']:.0f}, "
                f"{ours} target tokens/s",
                flush=True,
            )
    return {
        "model": args.model,
        "ours_model": OUR_MODELS[args.model],
        "joey_config": project_path(joey_yaml(args.peer, args.model)),
        "ours_variants": args.ours,
        "threads": args.threads,
        "batch_sentences": 64,
        "window_steps": args.window,
        "windows_per_job": args.windows,
        "cpu": cpu_model(),
        "load_average_start": load_start,
        "load_average_end": [round(a, 2) for a in os.getloadavg()],
        "rounds": rounds,
        "summary": summarize(rounds, args.ours),
    }


def main() -> int:
    try:
        args = parse_args()
        check_inputs(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return measure_and_report(args, measure, print_table)


if __name__ == "__main__":
    sys.exit(main())

"""Decoding speed of our default model next to Joey NMT 2.3.0's, measured side by side in one run.

Why one script and one run: timings on this shared 2-core machine drift by 15-30% between
back-to-back runs (the peer's RESULTS.md), so a figure of ours and a figure of Joey's taken apart
say little about which toolkit decodes faster.  Here both are measured in one invocation, in rounds
that alternate Joey beam, ours beam, Joey greedy, ours greedy, so drift hits all four; each job
runs alone.  This is the decoding twin of ``benchmarks/bench_joey.py`` (training throughput).

What is compared: sentences per second decoding test_2016_flickr (1,000 sentences), batches of 64
sentences, beam 5 with length penalty alpha 1.0 (both toolkits use the GNMT penalty) and greedy,
fp32, ``--threads`` threads, the same architecture (BiLSTM encoder, LSTM decoder, additive
attention, input feeding; Joey's ``rnn_multi30k_ende.yaml``), each model trained by its own recipe
for the same budget (reports/bench_joey_decode.json: one epoch, 454 steps of 64 sentences, each).

- Ours: ``benchmarks/bench_decode.py`` in a child process.  Its clock covers the search only: the
  batches are formed (sorted by length) before it starts, after a one-sentence warm-up.  In the
  greedy slot it is run with ``--beam 1``, so that its second pass is greedy again rather than an
  unused beam pass.
- Joey: its own ``joeynmt test`` on a copy of the peer YAML (dev set removed, ``beam_size`` set),
  as the peer's ``run.sh test`` runs it.  Two figures: "search", from the ``Generation took`` line
  Joey logs (its clock also covers iterating over its batches, which SentencePiece-encodes the
  sources on the fly, in file order, not sorted by length), comparable with ours; and "whole", the
  wall time of the command (Python start, imports, data and model loading, writing the output).
- Output length, because decoding time grows with it: ours counts the pieces it generated (EOS
  excluded); Joey's outputs are re-encoded with Joey's SentencePiece model (pieces, no EOS).  Both
  sides also get whitespace words of the detokenized output (ours from the quality pass).
- Quality pass (skip with ``--no-quality``), once after the timed rounds: our model decodes the
  test set again (beam and greedy, untimed) and both sides' detokenized outputs are scored with the
  project's sacreBLEU settings (BLEU 13a, chrF) against the raw reference of --raw.

What stays unequal, and is reported rather than hidden: the two models are not equally good after
the same budget (BLEU in the table) and do not write equally long outputs (length rows, and output
pieces per second beside sentences per second); Joey decodes its batches in file order, ours sorted
by length (less padding, earlier stops: ``--joey-sorted`` also times Joey on a length-sorted copy
of the test set); each toolkit keeps its own output-length limit (Joey
1.5 x the longest source of the batch, ours 1.5 x each source + 10).

Usage:
    python benchmarks/bench_joey_decode.py --model M --data D           # 3 rounds, about 9 minutes here
    python benchmarks/bench_joey_decode.py --model M --data D --rounds 1 --threads 1   # smoke, about 3 minutes
Prerequisites (the peer's venv and data, and a Joey model trained for one epoch, under --work):
    WORK=/tmp/joeypeer bash ../shared/peers/joeynmt/run.sh setup      # from the project root
    WORK=/tmp/joeypeer bash ../shared/peers/joeynmt/run.sh prepare
    python benchmarks/bench_joey_decode.py --write-train-config /tmp/jd/joey_train.yaml
    OMP_NUM_THREADS=1 PYTHONPATH=/tmp/joeypeer/pylib /tmp/joeypeer/venv/bin/python \\
        -m joeynmt train /tmp/jd/joey_train.yaml      # 1 epoch, about 20 minutes here
Writes --out (JSON, atomically) and prints a table: ours / Joey's, ratio ours/Joey.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
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

RAW = ROOT.parent / "shared" / "data" / "multi30k"
TEST = "test_2016_flickr"
STEPS_PER_EPOCH = 454  # 29,000 sentences in batches of 64
GEN = re.compile(r"Generation took\s*([0-9.]+)\s*\[sec\]")
JOEY_EVAL = re.compile(r"Evaluation result \((?:beam search|greedy)\):\s*bleu:\s*([0-9.]+),\s*chrf:\s*([0-9.]+)")
MODES = {"beam": "beam_batched", "greedy": "greedy_batched"}  # our mode -> bench_decode.py's result key


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds of Joey beam, ours beam, Joey greedy, ours greedy")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "model.pt", help="our model file")
    ap.add_argument(
        "--data",
        type=Path,
        default=ROOT / "data" / "prepared",
        help="our prepared data (spm.model, test.npz = test_2016_flickr) the model was trained with",
    )
    ap.add_argument("--work", type=Path, default=Path(PEER_WORK), help="the peer's WORK folder (venv, data)")
    ap.add_argument("--peer", type=Path, default=PEER, help="the peer's folder (rnn_multi30k_ende.yaml, run.sh)")
    ap.add_argument("--joey-model", type=Path, help="Joey's model_dir with best.ckpt (default: WORK/decode_model)")
    ap.add_argument("--raw", type=Path, default=RAW, help="raw Multi30k (test_2016_flickr.de.gz, the reference)")
    ap.add_argument("--no-quality", action="store_true", help="skip the untimed BLEU / output-length pass")
    ap.add_argument(
        "--joey-sorted",
        action="store_true",
        help="also time Joey on a copy of the test set sorted by source length (ours sorts its batches), "
        "right after each of its file-order jobs",
    )
    ap.add_argument(
        "--write-train-config",
        type=Path,
        metavar="PATH",
        help="only write the 1-epoch Joey training YAML (model_dir = --joey-model) to PATH and exit",
    )
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench_joey_decode.json")
    args = ap.parse_args()
    if min(args.rounds, args.threads, args.beam) < 1:
        raise InputError("--rounds, --threads and --beam must be at least 1")
    if args.beam == 1:
        raise InputError("--beam must be above 1 (greedy is measured anyway)")
    args.joey_model = args.joey_model or args.work / "decode_model"
    return args


def joey_model_config(args: argparse.Namespace) -> dict:
    cfg = peer_config(args.peer, args.work)
    cfg["model_dir"] = str(args.joey_model)
    return cfg


def write_train_config(args: argparse.Namespace) -> None:
    """The peer's recipe for exactly one epoch, validated (greedy, dev set) once, at its last step."""
    cfg = joey_model_config(args)
    # Joey wants validation_freq divisible by logging_freq: 454 = 2 x 227
    cfg["training"].update(epochs=1, logging_freq=STEPS_PER_EPOCH // 2, validation_freq=STEPS_PER_EPOCH)
    args.write_train_config.parent.mkdir(parents=True, exist_ok=True)
    args.write_train_config.write_text(yaml.safe_dump(cfg, sort_keys=False))


def joey_test_config(args: argparse.Namespace, beam: int, path: Path, test: Path | None = None) -> Path:
    """run.sh's test config: the peer YAML without the dev set, ``beam_size`` set (1 = greedy);
    ``test``: another test set prefix (``<test>.en``, ``<test>.de``)."""
    cfg = joey_model_config(args)
    del cfg["data"]["dev"]
    cfg["testing"]["beam_size"] = beam
    if test is not None:
        cfg["data"]["test"] = str(test)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def check_inputs(args: argparse.Namespace) -> None:
    """Raise InputError naming the first missing prerequisite and the command that creates it."""
    check_peer(args.peer, args.work, (f"data/{TEST}.en", f"data/{TEST}.de"))
    python = args.work / "venv" / "bin" / "python"
    if not (args.joey_model / "best.ckpt").exists():
        raise InputError(
            f"no trained Joey model: {args.joey_model / 'best.ckpt'} (train one for 1 epoch: "
            f"{sys.argv[0]} --write-train-config T.yaml, then PYTHONPATH={args.work / 'pylib'} {python} "
            "-m joeynmt train T.yaml; or pass --joey-model)"
        )
    if not args.model.is_file():
        raise InputError(f"our model missing: {args.model} (run the train stage or pass --model)")
    check_prepared(args.data, ("test.npz", "spm.model"))
    if not args.no_quality and not (args.raw / f"{TEST}.de.gz").is_file():
        raise InputError(f"raw reference missing: {args.raw / f'{TEST}.de.gz'} (pass --raw or --no-quality)")


def tail(text: str) -> str:
    return (text.strip().splitlines()[-1:] or ["(no output)"])[0]


def output_lengths(lines: list[str], spm_model: Path | None) -> dict[str, float]:
    """Mean whitespace words per output, and mean SentencePiece pieces (no EOS) when a model is given."""
    n = max(len(lines), 1)
    out = {"mean_output_words": round(sum(len(s.split()) for s in lines) / n, 2)}
    if spm_model is not None:
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(spm_model))
        out["mean_output_pieces"] = round(sum(len(p) for p in sp.encode(lines)) / n, 2)
    return out


def sorted_test_set(args: argparse.Namespace, tmp: Path) -> Path:
    """A copy of test_2016_flickr (both sides) ordered by source length in Joey's pieces, shortest
    first, ties in file order: Joey then batches sentences of similar length, as ours does."""
    import sentencepiece as spm

    prefix = tmp / "sorted" / TEST
    if not prefix.with_suffix(".de").is_file():
        prefix.parent.mkdir(parents=True, exist_ok=True)
        sp = spm.SentencePieceProcessor(model_file=str(args.work / "data" / "spm8k.model"))
        src, ref = (
            (args.work / "data" / f"{TEST}.{lang}").read_text(encoding="utf-8").splitlines() for lang in "en de".split()
        )
        order = sorted(range(len(src)), key=lambda i: len(sp.encode(src[i])))
        for lang, lines in (("en", src), ("de", ref)):
            prefix.with_suffix(f".{lang}").write_text("".join(lines[i] + "\n" for i in order), encoding="utf-8")
    return prefix


def run_joey(args: argparse.Namespace, beam: int, tmp: Path, by_length: bool = False) -> dict:
    """One ``joeynmt test`` of test_2016_flickr (sorted by source length if ``by_length``); its
    logged search time and the command's wall time."""
    tag = f"beam{beam}" + ("_sorted" if by_length else "")
    cfg = joey_test_config(args, beam, tmp / f"joey_{tag}.yaml", sorted_test_set(args, tmp) if by_length else None)
    hyp_prefix = tmp / f"joey_hyp_{tag}"
    cmd = [str(args.work / "venv" / "bin" / "python"), "-m", "joeynmt", "test", str(cfg), "-o", str(hyp_prefix)]
    # run.sh puts $WORK/pylib first: Joey 2.3.0 needs its sentencepiece 0.2.0
    env = thread_env(args.threads, {"PYTHONPATH": str(args.work / "pylib")})
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RunError(f"joeynmt test (beam {beam}) exited with code {proc.returncode}: {tail(proc.stdout)}")
    gen = GEN.findall(proc.stdout)
    hyp_file = Path(f"{hyp_prefix}.test")
    if len(gen) != 1 or not hyp_file.is_file():
        raise RunError(f"joeynmt test (beam {beam}) logged {len(gen)} 'Generation took' lines, expected 1")
    hyps = hyp_file.read_text(encoding="utf-8").splitlines()
    search = float(gen[0])
    own = JOEY_EVAL.search(proc.stdout)
    return {
        "sentences": len(hyps),
        "search_seconds": round(search, 3),
        "search_sentences_per_sec": round(len(hyps) / search, 2),
        "whole_seconds": round(wall, 3),
        "whole_sentences_per_sec": round(len(hyps) / wall, 2),
        **output_lengths(hyps, args.work / "data" / "spm8k.model"),
        "joey_logged_bleu": float(own.group(1)) if own else None,
        "joey_logged_chrf": round(100 * float(own.group(2)), 2) if own else None,  # Joey logs chrF / 100
        "hypotheses": hyps,
    }


def run_ours(args: argparse.Namespace, mode: str, tmp: Path) -> dict:
    """One bench_decode.py job (child process); its figure for ``mode`` (beam or greedy)."""
    out = tmp / f"ours_{mode}.json"
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "bench_decode.py"),
        "--model",
        str(args.model),
        "--data",
        str(args.data),
        "--threads",
        str(args.threads),
        "--device",
        "cpu",
        "--precision",
        "32",
        "--batch-size",
        "64",
        "--beam",
        str(args.beam if mode == "beam" else 1),
        "--length-penalty",
        "1.0",
        "--single",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.run(
        cmd, cwd=ROOT, env=thread_env(args.threads), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    if proc.returncode != 0:
        raise RunError(f"bench_decode.py ({mode}) exited with code {proc.returncode}: {tail(proc.stderr)}")
    report = json.loads(out.read_text())
    result = report["results"][MODES[mode]]
    return {
        "sentences": result["sentences"],
        "seconds": result["seconds"],
        "sentences_per_sec": result["sentences_per_sec"],
        "mean_output_tokens": result["mean_output_tokens"],
        "peak_rss_mib": report["peak_rss_mib"],
        "parameters": report["parameters"],
    }


def quality(args: argparse.Namespace, joey_hyps: dict[str, list[str]]) -> dict:
    """Untimed: our outputs (beam, greedy) detokenized; both sides scored against the raw reference."""
    import torch

    from s2s.data.dataset import ParallelData
    from s2s.data.vocab import Vocabulary
    from s2s.evaluation.metrics import score_corpus
    from s2s.inference.batching import translate_ids
    from s2s.inference.search import SearchOptions
    from s2s.models.model_file import load_model_file

    torch.set_num_threads(args.threads)
    with gzip.open(args.raw / f"{TEST}.de.gz", "rt", encoding="utf-8") as fh:
        refs = [line.rstrip("\n") for line in fh]
    model, _ = load_model_file(args.model, args.data / "spm.model")
    vocab = Vocabulary(args.data / "spm.model")
    data = ParallelData.load(args.data / "test.npz")
    src = [data[i][1].tolist() for i in range(len(data))]
    if len(src) != len(refs):
        raise RunError(f"{args.data / 'test.npz'} has {len(src)} sentences, the reference {len(refs)}")
    opts = {
        "beam": SearchOptions(beam_size=args.beam, length_penalty=1.0, precision="32"),
        "greedy": SearchOptions(beam_size=1, n_best=1, length_penalty=0.0, precision="32"),
    }
    out: dict[str, dict] = {}
    for mode, o in opts.items():
        hyps = vocab.decode([h[0].tokens for h in translate_ids(model, src, o)])
        out[f"ours {mode}"] = {**score_corpus(hyps, refs), **output_lengths(hyps, None)}
        out[f"joey {mode}"] = {**score_corpus(joey_hyps[mode], refs), **output_lengths(joey_hyps[mode], None)}
    return out


def spread(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "range": [min(values), max(values)], "per_round": values}


def summarize(rounds: list[dict]) -> dict:
    """Per mode: ours, Joey search, Joey whole (median, range, per round) and the ratios ours/Joey."""
    summary: dict[str, dict] = {}
    for mode in MODES:
        ours = [r[f"ours {mode}"]["sentences_per_sec"] for r in rounds]
        entry: dict = {"ours_sentences_per_sec": spread(ours)}
        kinds = [("search", f"joey {mode}", "search"), ("whole", f"joey {mode}", "whole")]
        if f"joey sorted {mode}" in rounds[0]:
            kinds.append(("sorted_search", f"joey sorted {mode}", "search"))
        for kind, job, clock in kinds:
            joey = [r[job][f"{clock}_sentences_per_sec"] for r in rounds]
            entry[f"joey_{kind}_sentences_per_sec"] = spread(joey)
            entry[f"ratio_ours_over_joey_{kind}"] = round(statistics.median(ours) / statistics.median(joey), 3)
            entry[f"ratio_{kind}_per_round"] = [round(o / j, 3) for o, j in zip(ours, joey)]
        last = rounds[-1]
        entry.update(
            ours_mean_output_pieces=last[f"ours {mode}"]["mean_output_tokens"],
            joey_mean_output_pieces=last[f"joey {mode}"]["mean_output_pieces"],
            joey_mean_output_words=last[f"joey {mode}"]["mean_output_words"],
        )
        if f"joey sorted {mode}" in last:
            entry["joey_sorted_mean_output_pieces"] = last[f"joey sorted {mode}"]["mean_output_pieces"]
        summary[mode] = entry
    return summary


def print_table(report: dict) -> None:
    s, q = report["summary"], report.get("quality")
    w = 50

    def row(label: str, ours: str, joey: str = "", ratio: str = "") -> None:
        # a long ratio cell (the per-round list) takes the Joey column's room too
        cells = f"{ours:>15}{joey:>15}{ratio:>11}" if len(ratio) < 12 else f"{ours:>15}{ratio:>26}"
        print(f"{label:<{w}}{cells}".rstrip())

    row(f"decoding {TEST} ({report['threads']} threads, batch 64)", "ours", "Joey 2.3.0", "ours/Joey")
    for mode in MODES:
        m = s[mode]
        name = f"beam {report['beam_size']}" if mode == "beam" else "greedy"
        ours = m["ours_sentences_per_sec"]
        print(f"{name}: sentences/s, median of {len(ours['per_round'])} rounds (ours: search only)")
        kinds = [("search", "search only"), ("whole", "whole command")]
        if "joey_sorted_search_sentences_per_sec" in m:
            kinds.append(("sorted_search", "search only, sorted input"))
        for kind, label in kinds:
            joey = m[f"joey_{kind}_sentences_per_sec"]
            ratio = m[f"ratio_ours_over_joey_{kind}"]
            row(f"  vs Joey {label}", f"{ours['median']:.1f}", f"{joey['median']:.1f}", f"{ratio:.2f}")
            lo_hi = [f"{lo:.1f}-{hi:.1f}" for lo, hi in (ours["range"], joey["range"])]
            row("    range over rounds", *lo_hi)
            row("    ratio per round", "", "", ", ".join(f"{r:.2f}" for r in m[f"ratio_{kind}_per_round"]))
        o_len, j_len = m["ours_mean_output_pieces"], m["joey_mean_output_pieces"]
        row("  mean output length, pieces (own spm, no EOS)", f"{o_len:.2f}", f"{j_len:.2f}", f"{o_len / j_len:.2f}")
        o_pps = ours["median"] * o_len
        j_pps = m["joey_search_sentences_per_sec"]["median"] * j_len
        row("  output pieces/s, search (sentences/s x length)", f"{o_pps:.0f}", f"{j_pps:.0f}", f"{o_pps / j_pps:.2f}")
        if q:
            ours_q, joey_q = q[f"ours {mode}"], q[f"joey {mode}"]
            o_w, j_w = ours_q["mean_output_words"], joey_q["mean_output_words"]
            row("  mean output length, words (detokenized)", f"{o_w:.2f}", f"{j_w:.2f}", f"{o_w / j_w:.2f}")
            row(
                "  BLEU / chrF (sacreBLEU, raw reference)",
                f"{ours_q['bleu']:.2f} / {ours_q['chrf']:.2f}",
                f"{joey_q['bleu']:.2f} / {joey_q['chrf']:.2f}",
            )


def round_line(result: dict[str, dict]) -> str:
    """One round's figures, e.g. ``beam: Joey 28.7 search / 25.9 whole, ours 65.9, greedy: ...``."""
    parts = []
    for mode in MODES:
        joey = result[f"joey {mode}"]
        search, whole = joey["search_sentences_per_sec"], joey["whole_sentences_per_sec"]
        text = f"{mode}: Joey {search:.1f} search / {whole:.1f} whole, "
        if f"joey sorted {mode}" in result:
            text += f"Joey sorted {result[f'joey sorted {mode}']['search_sentences_per_sec']:.1f} search, "
        parts.append(text + f"ours {result[f'ours {mode}']['sentences_per_sec']:.1f}")
    return ", ".join(parts)


def measure(args: argparse.Namespace) -> dict:
    """The alternating rounds; each job alone, in the order Joey beam, ours beam, Joey greedy, ours greedy."""
    rounds: list[dict] = []
    joey_hyps: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            result: dict[str, dict] = {}
            for mode in MODES:
                joey = run_joey(args, args.beam if mode == "beam" else 1, Path(tmp))
                joey_hyps[mode] = joey.pop("hypotheses")
                result[f"joey {mode}"] = joey
                if args.joey_sorted:
                    joey = run_joey(args, args.beam if mode == "beam" else 1, Path(tmp), by_length=True)
                    joey.pop("hypotheses")  # in sorted order; scored above in file order
                    result[f"joey sorted {mode}"] = joey
                result[f"ours {mode}"] = run_ours(args, mode, Path(tmp))
            rounds.append(result)
            print(f"round {n + 1}/{args.rounds}: {round_line(result)} sentences/s", flush=True)
    report = {
        "test_set": TEST,
        "threads": args.threads,
        "batch_sentences": 64,
        "beam_size": args.beam,
        "length_penalty": 1.0,
        "ours_model": str(args.model),
        "ours_data": str(args.data),
        "joey_model": str(args.joey_model / "best.ckpt"),
        "rounds": rounds,
        "summary": summarize(rounds),
    }
    if not args.no_quality:
        report["quality"] = quality(args, joey_hyps)
    return report


def main() -> int:
    try:
        args = parse_args()
        if args.write_train_config:
            write_train_config(args)
            print(f"written to {args.write_train_config}")
            return 0
        check_inputs(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return measure_and_report(args, measure, print_table)


if __name__ == "__main__":
    sys.exit(main())

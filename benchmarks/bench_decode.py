"""Decoding throughput: batched greedy, batched beam search and sentence-at-a-time beam search.

Sentences/second on the test set (batches sorted by length, as the evaluate stage forms them):
batched greedy, batched beam (both ``--batch-size``), and beam on one sentence at a time over the
first ``--single`` sentences only (its rate is extrapolated).  Usage:
    python benchmarks/bench_decode.py [--model models/model.pt] [--data data/prepared] [--threads 2]
    python benchmarks/bench_decode.py --random-model --limit 128   # no trained model needed
    python benchmarks/bench_decode.py --compile true                # also with the decoder step compiled
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from s2s.common.io import InputError  # noqa: E402
from s2s.common.numerics import apply_numerics, set_threads  # noqa: E402
from s2s.data.dataset import ParallelData  # noqa: E402
from s2s.data.loaders import eval_loader  # noqa: E402
from s2s.inference.compilation import compile_decoder_step  # noqa: E402
from s2s.inference.device import resolve_device  # noqa: E402
from s2s.inference.search import SearchOptions, decode  # noqa: E402
from s2s.models.build import build_model, count_parameters  # noqa: E402
from s2s.models.model_file import load_model_file  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


def random_setup(n: int, vocab: int, seed: int) -> tuple[torch.nn.Module, ParallelData]:
    """An untrained bilstm_attn model and random sources with Multi30k-like lengths (10-25).

    Untrained, it almost never predicts EOS: every output runs to its length limit, so beam search
    gains nothing from dropping finished sentences and the figures are a worst case for it.
    """
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["model=bilstm_attn"])
    torch.manual_seed(seed)
    model = build_model(OmegaConf.to_container(cfg.model, resolve=True), vocab).eval()
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(10, 26, (n,), generator=g).tolist()
    src = [torch.randint(4, vocab, (k,), generator=g).tolist() for k in lengths]
    return model, ParallelData.from_sequences(src, [[] for _ in src])


def subset(data: ParallelData, n: int) -> ParallelData:
    n = min(n, len(data))
    return ParallelData.from_sequences([data[i][1].tolist() for i in range(n)], [data[i][2].tolist() for i in range(n)])


def run(model: torch.nn.Module, data: ParallelData, opts: SearchOptions, batch_size: int,
        outputs: list | None = None) -> dict:
    """Decode all of ``data``; seconds, sentences/s and the mean output length (the best
    hypotheses are appended to ``outputs`` when given)."""
    batches = list(eval_loader(data, batch_size))
    tokens = 0
    with torch.inference_mode():
        decode(model, batches[0].src[:1], batches[0].src_lengths[:1], opts)  # warm-up
        start = time.perf_counter()
        for batch in batches:
            for hyps in decode(model, batch.src, batch.src_lengths, opts):
                tokens += len(hyps[0].tokens)
                if outputs is not None:
                    outputs.append(hyps[0].tokens)
        seconds = time.perf_counter() - start
    return {
        "sentences": len(data),
        "seconds": round(seconds, 3),
        "sentences_per_sec": round(len(data) / seconds, 2),
        "mean_output_tokens": round(tokens / max(len(data), 1), 2),
    }


def compiled_vs_eager(model: torch.nn.Module, data: ParallelData, opts: dict[str, SearchOptions], batch_size: int,
                      mode: str, eager: dict[str, list]) -> dict:
    """The same runs with the decoder step compiled (``decode.compile=<mode>``); the first pass over
    the data, which compiles, is timed separately.  Outputs are compared with the eager ones."""
    compile_decoder_step(model, mode, "--compile")
    out = {}
    for name, o in opts.items():
        start = time.perf_counter()
        run(model, data, o, batch_size)
        first = time.perf_counter() - start
        hyps: list = []
        r = run(model, data, o, batch_size, hyps)
        r["first_pass_seconds"] = round(first, 1)
        r["identical_to_eager"] = sum(a == b for a, b in zip(hyps, eager[name])) / max(len(hyps), 1)
        out[f"{name}_compiled"] = r
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/model.pt")
    ap.add_argument("--data", default="data/prepared")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--length-penalty", type=float, default=1.0)
    ap.add_argument("--single", type=int, default=100, help="sentences decoded one at a time")
    ap.add_argument("--limit", type=int, help="use only the first N sentences")
    ap.add_argument("--random-model", action="store_true", help="an untrained bilstm_attn model, random sources")
    ap.add_argument("--random-sentences", type=int, default=1000)
    ap.add_argument("--vocab", type=int, default=8000, help="vocabulary of the random model")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU) | cpu | cuda[:N]")
    ap.add_argument("--precision", default="auto", help="auto (bf16 on GPUs that support it, else float32) | 32 | bf16")
    ap.add_argument("--compile", metavar="MODE", help="also measure with the decoder step compiled "
                    "(true | reduce-overhead | max-autotune), after the eager runs")
    ap.add_argument("--numerics", default="portable", help="portable (the default) | fast (s2s.common.numerics)")
    ap.add_argument("--mkl-branch", default="AVX2", help="portable mode's MKL branch: AVX2 (default) | COMPATIBLE")
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args()

    # as the evaluate stage: before the first tensor operation
    apply_numerics(args.numerics, mkl_branch=args.mkl_branch)
    set_threads(args.threads)  # MKL's own count held as the stage holds it (portable numerics)
    if args.random_model:
        model, data = random_setup(args.limit or args.random_sentences, args.vocab, args.seed)
        source = f"random bilstm_attn, vocab {args.vocab}"
    else:
        spm_model = Path(args.data) / "spm.model"
        model, _ = load_model_file(args.model, spm_model if spm_model.is_file() else None)
        data = ParallelData.load(Path(args.data) / "test.npz")
        if len(data) and int(data.src.max()) >= model.vocab_size:
            sys.exit(f"{args.data}/test.npz has ids beyond the model's vocabulary ({model.vocab_size}): "
                     "the data was prepared with another vocabulary than the model was trained on")
        source = f"{args.model} on {args.data}/test.npz"
    if args.limit:
        data = subset(data, args.limit)
    device = resolve_device(args.device)
    model.eval().to(device)  # decode() moves each batch to the model's device

    greedy = SearchOptions(beam_size=1, n_best=1, length_penalty=0.0, precision=args.precision)
    beam = SearchOptions(beam_size=args.beam, n_best=1, length_penalty=args.length_penalty, precision=args.precision)
    eager: dict[str, list] = {"greedy_batched": [], "beam_batched": []}
    results = {
        "greedy_batched": run(model, data, greedy, args.batch_size, eager["greedy_batched"]),
        "beam_batched": run(model, data, beam, args.batch_size, eager["beam_batched"]),
        "beam_single": run(model, subset(data, args.single), beam, 1),
    }
    if args.compile:
        opts = {"greedy_batched": greedy, "beam_batched": beam}
        results.update(compiled_vs_eager(model, data, opts, args.batch_size, args.compile, eager))
    rate = {k: v["sentences_per_sec"] for k, v in results.items()}
    report = {
        "source": source,
        "parameters": count_parameters(model),
        "sentences": len(data),
        "threads": args.threads,
        "device": str(device),
        "precision": args.precision,
        "numerics": args.numerics,
        "batch_size": args.batch_size,
        "beam_size": args.beam,
        "length_penalty": args.length_penalty,
        "results": results,
        "ratio_beam_batched_over_single": round(rate["beam_batched"] / rate["beam_single"], 2),
        "ratio_beam_batched_over_greedy": round(rate["beam_batched"] / rate["greedy_batched"], 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }

    print(f"{source} on {device} ({args.precision}): {len(data)} sentences, {args.threads} threads, "
          f"batch {args.batch_size}, beam {args.beam}")
    print(f"{'mode':<16}{'sentences':>10}{'seconds':>10}{'sent/s':>10}{'out len':>10}")
    for name, r in results.items():
        print(f"{name:<16}{r['sentences']:>10}{r['seconds']:>10.2f}{r['sentences_per_sec']:>10.1f}"
              f"{r['mean_output_tokens']:>10.1f}")
    for name in ("greedy_batched", "beam_batched"):
        if f"{name}_compiled" in results:
            c = results[f"{name}_compiled"]
            print(f"{name} compiled / eager: {rate[name + '_compiled'] / rate[name]:.3f} "
                  f"(first pass {c['first_pass_seconds']} s, identical outputs {c['identical_to_eager']:.1%})")
    print(f"batched beam / sentence-at-a-time beam: {report['ratio_beam_batched_over_single']:.2f}x")
    print(f"batched beam / batched greedy:          {report['ratio_beam_batched_over_greedy']:.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    try:
        main()
    except InputError as err:
        sys.exit(f"error: {err}")

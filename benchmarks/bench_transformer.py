"""The Transformer recipe against the RNN default, side by side in one process: training and beam 5.

Both models run under the same numerics (the composed config's, portable by default: applied once,
before the first tensor operation) and the same thread count, and alternate for ``--rounds``
rounds, so both see the same machine load.  Printed per model: training target tokens/s through the
real Trainer (``bench_train.measure``: the median of windows after a warm-up) and batched beam-5
sentences/s on the first ``--sentences`` test sources; then the Transformer / RNN ratios.

The decoding models are freshly initialised (no trained Transformer is needed): untrained, they
almost never predict EOS, so every hypothesis runs to its length limit ``a * src_len + b`` for
both models alike. That equalises the work (the same output lengths) and is the worst case for
beam search's early stop. Usage (prepared data as the train stage makes it: download, preprocess):
    python benchmarks/bench_transformer.py [--steps 60] [--warmup 10] [--window 10] [--rounds 1]
        [--threads 2] [--sentences 200] [--out FILE] [hydra overrides, e.g. paths.prepared_dir=...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from bench_decode import run as decode_run  # noqa: E402
from bench_decode import subset  # noqa: E402
from bench_train import CONF, measure  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

from s2s.common.config_dict import plain  # noqa: E402
from s2s.common.numerics import cpu_model, set_threads  # noqa: E402
from s2s.data.dataset import ParallelData  # noqa: E402
from s2s.data.vocab import Vocabulary  # noqa: E402
from s2s.inference.search import SearchOptions  # noqa: E402
from s2s.models.build import build_model, count_parameters  # noqa: E402

MODELS = {"rnn": "bilstm_attn", "transformer": "transformer"}


def decode_rate(overrides: list[str], sentences: int, beam: int, threads: int, seed: int) -> dict:
    """Batched beam search (the evaluate stage's batch size) of a fresh model on the test sources."""
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    set_threads(threads)
    prepared = Path(cfg.paths.prepared_dir)
    vocab = len(Vocabulary(prepared / "spm.model"))
    torch.manual_seed(seed)
    model = build_model(plain(cfg.model), vocab).eval()
    data = subset(ParallelData.load(prepared / "test.npz"), sentences)
    opts = SearchOptions(beam_size=beam, n_best=1, length_penalty=float(cfg.decode.length_penalty),
                         max_len_a=float(cfg.decode.max_len_a), max_len_b=int(cfg.decode.max_len_b))
    result = decode_run(model, data, opts, int(cfg.decode.batch_size))
    return {"model": cfg.model.name, "parameters": count_parameters(model), "beam": beam,
            "batch_size": int(cfg.decode.batch_size), **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60, help="measured training steps per model and round")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--sentences", type=int, default=200, help="test sources decoded per model and round")
    ap.add_argument("--beam", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", help="also write the results as JSON here")
    args, overrides = ap.parse_known_args()

    runs: dict[str, dict[str, list[dict]]] = {k: {"train": [], "decode": []} for k in MODELS}
    for _ in range(args.rounds):
        for key, name in MODELS.items():
            extra = [*overrides, f"model={name}"]
            runs[key]["train"].append(measure(extra, args.steps, args.warmup, args.window, args.threads, "cpu"))
            runs[key]["decode"].append(decode_rate(extra, args.sentences, args.beam, args.threads, args.seed))

    def median(key: str, part: str, field: str) -> float:
        return statistics.median(r[field] for r in runs[key][part])

    rows = {
        key: {
            "model": MODELS[key],
            "parameters": runs[key]["train"][0]["parameters"],
            "train_target_tokens_per_sec": median(key, "train", "target_tokens_per_sec"),
            "beam_sentences_per_sec": median(key, "decode", "sentences_per_sec"),
            "beam_mean_output_tokens": median(key, "decode", "mean_output_tokens"),
        }
        for key in MODELS
    }
    ratios = {
        "train_tokens_per_sec": round(rows["transformer"]["train_target_tokens_per_sec"]
                                      / rows["rnn"]["train_target_tokens_per_sec"], 3),
        "beam_sentences_per_sec": round(rows["transformer"]["beam_sentences_per_sec"]
                                        / rows["rnn"]["beam_sentences_per_sec"], 3),
    }
    first = runs["rnn"]["train"][0]
    report = {
        "cpu": cpu_model(), "machine": platform.machine(), "threads": args.threads,
        "numerics": first["numerics"], "precision": first["precision"], "torch": torch.__version__,
        "overrides": overrides, "steps": args.steps, "warmup": args.warmup, "rounds": args.rounds,
        "sentences": args.sentences, "rows": rows, "ratio_transformer_over_rnn": ratios, "runs": runs,
    }
    print(f"{report['cpu']}: {args.threads} threads, numerics {report['numerics']} ({report['precision']}), "
          f"{args.rounds} round(s); training {args.steps} steps after {args.warmup}; beam {args.beam} on "
          f"{args.sentences} test sources, fresh models (outputs to the length limit)")
    print(f"{'model':<14}{'parameters':>12}{'train tgt tok/s':>17}{'beam sent/s':>13}{'out len':>9}")
    for row in rows.values():
        print(f"{row['model']:<14}{row['parameters']:>12,}{row['train_target_tokens_per_sec']:>17.1f}"
              f"{row['beam_sentences_per_sec']:>13.2f}{row['beam_mean_output_tokens']:>9.1f}")
    print(f"transformer / rnn: training {ratios['train_tokens_per_sec']:.3f}x, "
          f"beam {args.beam} {ratios['beam_sentences_per_sec']:.3f}x")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Training throughput of a model config on the prepared training data, through the real Trainer.

Prints target tokens/s and sentence pairs/s: the median of several measured windows after a
warm-up, plus peak resident memory.  Usage:
    python benchmarks/bench_train.py [--steps 200] [--warmup 20] [--window 20] [--device auto] [hydra overrides...]
    python benchmarks/bench_train.py --vs model=bilstm_attn_fused --rounds 2   # ratio to the default model
    python benchmarks/bench_train.py --vs train.compile=true --rounds 2        # compiled decoder step vs eager
(numerics=portable against numerics=fast needs two processes: benchmarks/bench_numerics.py)
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import pytorch_lightning as pl  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from s2s.common.numerics import apply_from_config, set_threads  # noqa: E402
from s2s.inference.device import resolve_device  # noqa: E402
from s2s.models.build import count_parameters  # noqa: E402
from s2s.training.run import build_task  # noqa: E402

CONF = Path(__file__).resolve().parents[1] / "conf"


class Meter(pl.Callback):
    def __init__(self) -> None:
        self.rows: list[tuple[float, int, int]] = []
        self._t = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # noqa: ANN001
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.rows.append((time.perf_counter() - self._t, batch.num_target_tokens, batch.src.size(0)))


def measure(overrides: list[str], steps: int, warmup: int, window: int, threads: int, device: str = "auto") -> dict:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    apply_from_config(cfg)  # as the train stage: before the first tensor operation of the process
    set_threads(threads)  # MKL's own count held as the stage holds it (portable numerics)
    task, dm = build_task(cfg)  # the train stage's own task, data and train.compile switch
    meter = Meter()
    trainer_cfg = OmegaConf.to_container(cfg.trainer, resolve=True)
    accelerator = "gpu" if resolve_device(device).type == "cuda" else "cpu"
    trainer_cfg.update(accelerator=accelerator, devices=1, strategy="auto")
    trainer_cfg.update(max_steps=warmup + steps, max_epochs=-1, limit_val_batches=0, num_sanity_val_steps=0,
                       enable_progress_bar=False, enable_checkpointing=False, logger=False,
                       enable_model_summary=False, use_distributed_sampler=False)
    trainer = pl.Trainer(**trainer_cfg, callbacks=[meter])
    trainer.fit(task, datamodule=dm)
    rows = meter.rows[warmup:]
    windows = [rows[i : i + window] for i in range(0, len(rows) - window + 1, window)]
    tok = [sum(r[1] for r in w) / sum(r[0] for r in w) for w in windows]
    sent = [sum(r[2] for r in w) / sum(r[0] for r in w) for w in windows]
    return {
        "model": cfg.model.name, "parameters": count_parameters(task.model), "precision": cfg.trainer.precision,
        "compile": cfg.train.compile, "numerics": cfg.numerics.mode,
        "threads": threads, "accelerator": accelerator,
        "steps_measured": len(rows), "target_tokens_per_sec": round(statistics.median(tok), 1),
        "target_tokens_per_sec_range": [round(min(tok), 1), round(max(tok), 1)],
        "pairs_per_sec": round(statistics.median(sent), 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU) | cpu | cuda")
    ap.add_argument("--vs", nargs="*", default=None, metavar="OVERRIDE",
                    help="also measure with these extra overrides (e.g. model=bilstm_attn_fused) and report "
                    "the ratio; the two alternate for --rounds rounds, so both see the same machine load")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out")
    args, overrides = ap.parse_known_args()
    if args.vs is None:
        result = measure(overrides, args.steps, args.warmup, args.window, args.threads, args.device)
    else:
        runs: dict[str, list[dict]] = {"base": [], "vs": []}
        for _ in range(args.rounds):
            for name, extra in (("base", []), ("vs", args.vs)):
                runs[name].append(measure(overrides + extra, args.steps, args.warmup, args.window, args.threads,
                                          args.device))
        ratios = [v["target_tokens_per_sec"] / b["target_tokens_per_sec"] for b, v in zip(runs["base"], runs["vs"])]
        result = {"base": runs["base"], "vs": runs["vs"], "vs_overrides": args.vs,
                  "ratio_vs_over_base_tokens_per_sec": round(statistics.median(ratios), 3),
                  "ratios_per_round": [round(r, 3) for r in ratios]}
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()

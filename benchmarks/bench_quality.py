"""Quality benchmark: train and evaluate a preset end to end, print BLEU, chrF and wall time.

    python benchmarks/bench_quality.py --name cpu30 preset=cpu            # the 30-minute CPU preset
    python benchmarks/bench_quality.py --name noattn preset=cpu model=lstm_noattn

Outputs go to benchmarks/runs/<name>/ (git-ignored), the summary to reports/quality_<name>.json.
Needs data/raw (run `dvc repro download` first).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    args, overrides = ap.parse_known_args()
    out = ROOT / "benchmarks/runs" / args.name
    paths = [
        f"paths.prepared_dir={out}/prepared",
        f"paths.checkpoint_dir={out}/checkpoints",
        f"paths.model_dir={out}/models",
        f"paths.reports_dir={out}/reports",
        f"hydra.run.dir={out}/hydra",
        "train.resume=never",
    ]
    times = {}
    for stage in ("preprocess", "train", "evaluate"):
        start = time.time()
        subprocess.run([sys.executable, f"src/{stage}.py", *paths, *overrides], cwd=ROOT, check=True)
        times[stage] = round(time.time() - start, 1)
    metrics = json.loads((out / "reports/metrics.json").read_text())
    run = json.loads((out / "models/run.json").read_text())
    summary = {
        "name": args.name,
        "overrides": overrides,
        "wall_s": times,
        "test_bleu": metrics["bleu"],
        "test_chrf": metrics["chrf"],
        "val_bleu": run.get("val_bleu"),
        "parameters": run.get("parameters"),
        "steps": run.get("global_step"),
        "signature": metrics["bleu_signature"],
    }
    (ROOT / "reports").mkdir(exist_ok=True)
    (ROOT / f"reports/quality_{args.name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""Rebuild a run's DVCLive curves (``plots/metrics/**.tsv``) from its MLflow metric history.

Why: the headline runs (docs/results/RUNS.md) train on commit 236340e, whose ``dvc.yaml`` did not
mark ``reports/dvclive`` persistent, so DVC deleted it each time a cut-off run was resumed with
``dvc repro``, and DVCLive's files hold only the epochs after the last resume (fixed since: issue 35
item 11 logs into ``checkpoints/dvclive`` and publishes with the model). MLflow kept every value:
the run (``reports/train_run.json``: run id, tracking URI) is continued across resumes. This writes
the same files DVCLive writes (``step<TAB><name>``, one row per logged value, in step order), so
``dvc plots show`` and ``collect_run.sh`` read the whole run.

    python benchmarks/mlflow_curves.py RUN_LINK OUT_DIR
    # RUN_LINK: a run's reports/train_run.json; OUT_DIR: gets plots/metrics/... (e.g. reports/dvclive)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

# MLflow key (Lightning's logged name) -> DVCLive file under plots/metrics/, and its column name
CURVES = {
    "epoch": ("epoch.tsv", "epoch"),
    "lr": ("lr.tsv", "lr"),
    "tokens_per_sec": ("tokens_per_sec.tsv", "tokens_per_sec"),
    "train_loss_step": ("train/step/loss.tsv", "loss"),
    "train_loss_epoch": ("train/epoch/loss.tsv", "loss"),
    "val_bleu": ("val/bleu.tsv", "bleu"),
    "val_loss": ("val/loss.tsv", "loss"),
    "val_ppl": ("val/ppl.tsv", "ppl"),
}


def _value(key: str, value: float) -> str:
    """As DVCLive writes it: the epoch an integer (Lightning logs it as one; MLflow stores floats)."""
    return str(int(value)) if key == "epoch" and value.is_integer() else repr(value)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: mlflow_curves.py RUN_LINK OUT_DIR", file=sys.stderr)
        return 2
    link_path, out = Path(argv[0]), Path(argv[1])
    try:
        link = json.loads(link_path.read_text(encoding="utf-8"))
        run_id, uri = link["run_id"], link["tracking_uri"]
    except (OSError, ValueError, KeyError) as err:
        print(f"error: {link_path}: no MLflow run link ({err})", file=sys.stderr)
        return 2
    client = MlflowClient(tracking_uri=uri)
    for key, (name, column) in CURVES.items():
        history = sorted(client.get_metric_history(run_id, key), key=lambda m: (m.step, m.timestamp))
        if not history:
            continue
        path = out / "plots" / "metrics" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = "".join(f"{m.step}\t{_value(key, m.value)}\n" for m in history)
        path.write_text(f"step\t{column}\n{rows}", encoding="utf-8")
        print(f"{path}: {len(history)} values")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

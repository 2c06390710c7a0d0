"""What an earlier train stage published, for the tests that check that a later one which does not
publish (a failure, params.yaml changed under it) leaves it as it was (issue 35, item 11)."""

from __future__ import annotations

from pathlib import Path

EARLIER = {
    "models/model.pt": b"the published model",
    "models/run.json": b'{"global_step": 9}\n',
    "reports/train_run.json": b'{"run_id": "the published run"}\n',
    "reports/dvclive/metrics.json": b'{"step": 9}\n',
    "reports/dvclive/plots/metrics/val/bleu.tsv": b"step\tbleu\n9\t1.5\n",
    "reports/dvclive/plots/metrics/old_metric.tsv": b"step\told_metric\n9\t1.0\n",  # a metric logged no more
}


def publish_earlier(base: Path) -> dict[str, bytes]:
    """Write :data:`EARLIER` under ``base`` (the folder of ``models/`` and ``reports/``); returns it."""
    for name, data in EARLIER.items():
        (base / name).parent.mkdir(parents=True, exist_ok=True)
        (base / name).write_bytes(data)
    return dict(EARLIER)


def published(base: Path) -> dict[str, bytes]:
    """Every file under ``base/models`` and ``base/reports``, by its path below ``base``."""
    return {
        str(p.relative_to(base)): p.read_bytes()
        for folder in ("models", "reports")
        for p in sorted((base / folder).rglob("*"))
        if p.is_file()
    }

"""Compare trained systems: BLEU/chrF with 95% CIs, mean ± std over seeds, paired significance.

    python src/compare.py --system attn=RUN[,RUN...] --system noattn=RUN [--baseline noattn]

A RUN (one trained seed of the system) is one of
  - a folder: a project checkout or a Hydra multirun job folder holding reports/eval/
    (its reports/ or models/ subfolder works too);
  - dvc:NAME  a DVC experiment (or any Git revision) of the project in the current folder;
  - mlflow:RUN_ID  an MLflow run (reports/eval/ logged by the evaluate stage under eval/), in the
    store of --tracking-uri / MLFLOW_TRACKING_URI / sqlite:///mlflow.db.
The first system is the baseline unless --baseline names another.  Writes compare.md,
compare.json and scores.csv (dvc.yaml plots it: dvc plots show shows BLEU per test set and system)
into --out-dir and, when a tracking store is configured, one MLflow run with the three files.
Defaults live in conf/compare.yaml.  Statistics: see s2s.evaluation.compare.statistics (sacreBLEU's PairedTest).

Training several seeds is one command, either way:
  - a DVC queue (the whole pipeline per seed, each an experiment):
        dvc exp run --queue -S seed=1,2,3 -n default && dvc queue start -j 1
        # the experiments are named default-1, default-2, default-3; once `dvc queue status` shows them done:
        python src/compare.py --system default=dvc:default-1,dvc:default-2,dvc:default-3 --system ...
  - a Hydra multirun of the train script on the prepared data (one job folder per seed), then
    the evaluate script over the same job folders:
        python src/train.py -m seed=1,2,3 hydra.sweep.dir=multirun/seeds
        python src/evaluate.py -m seed=1,2,3 hydra.sweep.dir=multirun/seeds \
            hydra.sweep.subdir='${hydra.job.num}/eval' 'paths.model_dir=${hydra:runtime.output_dir}/../models' \
            'paths.reports_dir=${hydra:runtime.output_dir}/../reports'
        python src/compare.py --system default=multirun/seeds/0,multirun/seeds/1,multirun/seeds/2 --system ...
"""

from __future__ import annotations

# isort: off
import s2s.common.interrupts  # noqa: F401 - first: Ctrl-C while importing the rest ends in one line
# isort: on

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from s2s.common.cli import user_errors
from s2s.common.io import InputError
from s2s.evaluation.compare import report as compare_report
from s2s.evaluation.compare import run_files as compare_run_files
from s2s.evaluation.compare import runs as compare_runs
from s2s.evaluation.compare import statistics as compare_statistics

CONFIG = Path(__file__).resolve().parents[1] / "conf" / "compare.yaml"
log = logging.getLogger("compare")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        self.exit(2, f"error: {message}\n")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cfg = OmegaConf.load(CONFIG)
    p = _Parser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--system", action="append", default=[], metavar="NAME=RUN[,RUN...]", required=True)
    p.add_argument("--baseline", help="name of the baseline system (default: the first --system)")
    p.add_argument("--out-dir", default=cfg.out_dir)
    p.add_argument("--seed", type=int, default=cfg.seed)
    p.add_argument("--bootstrap-samples", type=int, default=cfg.bootstrap_samples)
    p.add_argument("--ar-trials", type=int, default=cfg.ar_trials)
    p.add_argument("--alpha", type=float, default=cfg.alpha)
    p.add_argument("--jobs", type=int, default=cfg.jobs)
    p.add_argument("--tracking-uri", help="MLflow store (default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    p.add_argument("--mlflow", choices=["auto", "true", "false"], default=str(cfg.mlflow.log).lower())
    p.add_argument("--experiment-name", default=cfg.mlflow.experiment_name)
    p.add_argument("--repo", default=".", help="the DVC project of dvc:NAME runs")
    return p.parse_args(argv)


def log_to_mlflow(args: argparse.Namespace, uri: str, report: dict, paths: dict[str, Path]) -> None:
    """One MLflow run holding the report, when a store is configured (checked before any work)."""
    from s2s.tracking.runs import log_new_run

    run_id = log_new_run(
        uri,
        args.experiment_name,
        f"compare {' vs '.join(report['systems'])}",
        compare_report.mlflow_metrics(report),
        {"baseline": report["baseline"], **{f"system.{n}": ", ".join(r) for n, r in report["systems"].items()}},
        [(p, None) for key, p in paths.items() if key != "plots_yaml"],  # the DVC plot file is local
    )
    log.info("logged to MLflow run %s (%s)", run_id, uri)


@user_errors
def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # per-step chatter; our inputs are detokenized
    args = parse_args(argv)
    from s2s.tracking import store

    uri = store.tracking_uri(args.tracking_uri)
    use_mlflow = args.mlflow == "true" or (
        args.mlflow == "auto"
        and bool(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or Path("mlflow.db").is_file())
    )
    options = [compare_runs.parse_system_option(v) for v in args.system]
    if args.baseline:
        names = [n for n, _ in options]
        if args.baseline not in names:
            raise InputError(f"--baseline {args.baseline}: no such --system (given: {', '.join(names)})")
        options.sort(key=lambda o: o[0] != args.baseline)
    settings = compare_statistics.Settings(args.seed, args.bootstrap_samples, args.ar_trials, args.alpha, args.jobs)
    if use_mlflow or any(s.startswith("mlflow:") for _, specs in options for s in specs):
        store.check_tracking_uri(uri)
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        def open_run(spec: str) -> compare_run_files.RunFiles:
            return compare_run_files.open_run(spec, uri, Path(tmp), args.repo)

        systems = compare_runs.load_systems(options, open_run)
    for line in compare_runs.provenance_warnings(systems):
        log.warning("warning: %s", line)
    report = compare_statistics.compare(systems, settings)
    paths = compare_report.write_report(report, args.out_dir)
    sys.stdout.write(compare_report.markdown(report))
    log.info("wrote %s", ", ".join(str(p) for p in paths.values()))
    if use_mlflow:
        log_to_mlflow(args, uri, report, paths)


if __name__ == "__main__":
    main()

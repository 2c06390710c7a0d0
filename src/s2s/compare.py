"""Compare trained systems: scores with confidence intervals, seeds, paired significance.

A *system* is one recipe; it has one or more *runs* (the same recipe trained with different
seeds).  Every run is read through :class:`RunFiles` (a folder, a DVC experiment, an MLflow
run), and :func:`test_sets_from_reports` is the one function that knows the evaluate stage's
file layout (``reports/eval/``: metrics.json naming the test sets, translations/<set>.tsv).

All statistics are sacreBLEU's own (``sacrebleu.significance.PairedTest``, the code behind
``sacrebleu --paired-bs`` / ``--paired-ar``), with the metrics configured as ``s2s.metrics``
scores them (cased, detokenized BLEU and chrF on raw references, every reference stream of a
test set that has several):

- per run: the score and its 95% confidence interval from bootstrap resampling;
- per system: mean and standard deviation over its runs (seeds);
- against the baseline: paired bootstrap resampling and approximate randomization p-values for
  every pair (system run, baseline run).  Seeds of two systems are unrelated, so no pairing is
  privileged: the summary p-value is the largest over all pairs, and a difference is called
  significant only when every pair is (a conservative rule; all pairs are in the JSON report).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from s2s.io import InputError, atomic_path, write_json_atomic, write_text_atomic

METRICS = ("bleu", "chrf")
EVAL_METRICS = "reports/eval/metrics.json"
EVAL_TRANSLATIONS = "reports/eval/translations/{}.tsv"
EVAL_REPORT = "reports/eval/report.json"  # signatures and the run's provenance (s2s.numerics)
OLD_TRANSLATIONS = "reports/translations.tsv"  # before reports/eval/: one file, one test set
OLD_METRICS = "reports/metrics.json"


# --------------------------------------------------------------------------------------------
# Reading runs


class RunFiles(Protocol):
    """Read access to one run's project-relative files (``reports/eval/metrics.json``, ...)."""

    label: str

    @property
    def identity(self) -> str:
        """What makes two specs the same run (a resolved folder, a commit, a run id)."""

    def read_text(self, relpath: str) -> str | None:
        """The file's text, or None when the run has no such file."""


@dataclass
class FolderRun:
    """A run folder: a project checkout or a Hydra multirun job folder holding ``reports/``.

    Its ``reports/`` or ``models/`` subfolder is accepted too (the run is the folder above).
    """

    root: Path
    label: str = ""

    def __post_init__(self) -> None:
        if not self.root.is_dir():
            raise InputError(
                f"{self.root}: folder not found (a run folder; use dvc:NAME for a DVC experiment, "
                "mlflow:RUN_ID for an MLflow run)"
            )
        self.label = self.label or str(self.root)
        self.base = next(
            (b for b in (self.root, self.root.parent) for f in (EVAL_METRICS, OLD_TRANSLATIONS) if (b / f).is_file()),
            self.root,
        )

    @property
    def identity(self) -> str:
        return str(self.base.resolve())

    def read_text(self, relpath: str) -> str | None:
        path = self.base / relpath
        return path.read_text(encoding="utf-8") if path.is_file() else None


@dataclass
class DvcExperimentRun:
    """A DVC experiment (or any Git revision) of the project: its committed reports.

    ``reports/eval/`` is an uncached DVC output, so it is in the experiment's Git commit; DVC
    resolves experiment names to that commit.
    """

    name: str
    repo: str = "."
    label: str = ""

    def __post_init__(self) -> None:
        import dvc.api
        from dvc.exceptions import DvcException
        from dvc.repo import Repo
        from dvc.scm import resolve_rev

        self.label = self.label or f"dvc:{self.name}"
        try:
            with Repo(self.repo) as repo:
                self.commit = resolve_rev(repo.scm, self.name)
        except DvcException as err:
            raise InputError(f"dvc:{self.name}: no such DVC experiment or Git revision in {self.repo} ({err})") from err
        self._fs = dvc.api.DVCFileSystem(self.repo, rev=self.commit)

    @property
    def identity(self) -> str:
        return f"dvc:{Path(self.repo).resolve()}@{self.commit}"

    def read_text(self, relpath: str) -> str | None:
        if not self._fs.isfile(relpath):
            return None
        return self._fs.read_text(relpath, encoding="utf-8")


@dataclass
class MlflowRun:
    """An MLflow run: the evaluate stage logs ``reports/eval/*`` under the artifact path ``eval/``,
    in a child run nested under the training run (or in the given run itself)."""

    run_id: str
    tracking_uri: str
    download_dir: Path
    label: str = ""

    def __post_init__(self) -> None:
        self.label = self.label or f"mlflow:{self.run_id}"

    @property
    def identity(self) -> str:
        return f"mlflow:{self.tracking_uri}#{self.run_id}"

    def read_text(self, relpath: str) -> str | None:
        from s2s import tracking

        # reports/eval/x -> eval/x; the old layout logged reports/<file> as eval/<file>
        new_layout = relpath.startswith("reports/eval/")
        artifact = relpath.removeprefix("reports/") if new_layout else "eval/" + Path(relpath).name
        path = tracking.download_artifact(
            self.tracking_uri, self.run_id, artifact, self.download_dir / self.run_id
        )
        return path.read_text(encoding="utf-8") if path is not None else None


def open_run(spec: str, tracking_uri: str, download_dir: Path, repo: str = ".") -> RunFiles:
    """``dvc:NAME`` (DVC experiment or Git revision), ``mlflow:RUN_ID``, or a folder path."""
    if spec.startswith("dvc:"):
        return DvcExperimentRun(spec[4:], repo)
    if spec.startswith("mlflow:"):
        return MlflowRun(spec[7:], tracking_uri, download_dir)
    return FolderRun(Path(spec))


# --------------------------------------------------------------------------------------------
# The evaluate stage's file layout (the one place that knows it)


@dataclass(frozen=True)
class TestSet:
    """One test set in one direction, as one run decoded it: ``references`` holds one or more
    reference streams, each aligned with ``sources`` (sacreBLEU scores against all of them)."""

    sources: tuple[str, ...]
    references: tuple[tuple[str, ...], ...]
    hypotheses: tuple[str, ...]


def _read_json(run: RunFiles, relpath: str) -> dict[str, Any] | None:
    text = run.read_text(relpath)
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{run.label}: {relpath} is not valid JSON ({err})") from err


def _parse_translations(text: str, where: str, default_name: str) -> dict[str, TestSet]:
    """``{"<test set> <direction>": TestSet}`` from one translations TSV: columns direction, source,
    reference, hypothesis, then reference_2... (a row may stop early, like evaluate's writer does
    for a sentence with fewer references; every sentence is scored against the common number)."""
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t"))
    if not rows:
        raise InputError(f"{where} is empty")
    header = rows[0]
    needed = ("direction", "source", "reference", "hypothesis")
    missing = [c for c in needed if c not in header]
    if missing:
        raise InputError(f"{where}, line 1: missing column(s) {', '.join(missing)} (header {header})")
    col = {name: header.index(name) for name in header}
    ref_cols = [col["reference"]] + [col[c] for c in header if c.startswith("reference_")]
    fixed = max(col[c] for c in (*needed, "testset") if c in col) + 1
    groups: dict[str, tuple[list[str], list[list[str]], list[str]]] = {}
    for number, row in enumerate(rows[1:], start=2):
        if not fixed <= len(row) <= len(header):
            raise InputError(f"{where}, line {number}: {len(row)} fields, expected {len(header)}")
        name = row[col["testset"]] if "testset" in col else default_name
        src, refs, hyp = groups.setdefault(f"{name} {row[col['direction']]}", ([], [], []))
        src.append(row[col["source"]])
        refs.append([row[c] for c in ref_cols if c < len(row)])
        hyp.append(row[col["hypothesis"]])
    if not groups:
        raise InputError(f"{where} has no translations")
    out = {}
    for key, (s, refs, h) in groups.items():
        n_refs = min(len(r) for r in refs)
        out[key] = TestSet(tuple(s), tuple(tuple(r[k] for r in refs) for k in range(n_refs)), tuple(h))
    return out


def test_sets_from_reports(run: RunFiles) -> dict[str, TestSet]:
    """``{"<test set> <direction>": TestSet}`` from what the evaluate stage wrote, primary first.

    ``reports/eval/metrics.json`` names the test sets (its ``test_sets`` keys); each one's
    sentences are in ``reports/eval/translations/<test set>.tsv``.  A run evaluated before that
    layout (one ``reports/translations.tsv``, its set named by ``reports/metrics.json``'s "split")
    is read too.  Adapt this function alone when evaluate writes its test sets elsewhere.
    """
    metrics = _read_json(run, EVAL_METRICS)
    names = (metrics or {}).get("test_sets")
    if not isinstance(names, dict) or not names:  # absent, or an older evaluation (MLflow: same eval/metrics.json)
        text = run.read_text(OLD_TRANSLATIONS)
        if text is None:
            problem = "not found (run the evaluate stage first)" if metrics is None else "lists no test_sets"
            raise InputError(f"{run.label}: {EVAL_METRICS} {problem}")
        name = (_read_json(run, OLD_METRICS) or {}).get("split") or "test"
        return _parse_translations(text, f"{run.label}: {OLD_TRANSLATIONS}", name)
    out: dict[str, TestSet] = {}
    for name in names:
        relpath = EVAL_TRANSLATIONS.format(name)
        text = run.read_text(relpath)
        if text is None:
            raise InputError(f"{run.label}: {relpath} not found ({EVAL_METRICS} lists test set {name})")
        out.update(_parse_translations(text, f"{run.label}: {relpath}", name))
    return out


# --------------------------------------------------------------------------------------------
# Systems and their runs


@dataclass
class Run:
    label: str
    test_sets: dict[str, TestSet]
    provenance: dict[str, Any] | None = None


@dataclass
class System:
    name: str
    runs: list[Run]


def parse_system_option(value: str) -> tuple[str, list[str]]:
    """``NAME=SPEC[,SPEC...]`` -> (NAME, [SPEC, ...]); one SPEC per seed."""
    name, sep, specs = value.partition("=")
    items = [s.strip() for s in specs.split(",") if s.strip()]
    if not sep or not name.strip() or not items:
        raise InputError(f"--system {value}: expected NAME=RUN[,RUN...] (a folder, dvc:EXP or mlflow:RUN_ID)")
    return name.strip(), items


def load_systems(
    options: Sequence[tuple[str, Sequence[str]]], opener: Callable[[str], RunFiles]
) -> list[System]:
    names = [n for n, _ in options]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"--system {dupes[0]}: the same system name is given twice")
    systems = []
    for name, specs in options:
        runs = []
        seen: dict[str, str] = {}
        for spec in specs:
            files = opener(spec)
            if files.identity in seen:  # one run counted as two seeds: a spread of 0 that means nothing
                raise InputError(
                    f"--system {name}: {spec} is given twice in system {name} (as {seen[files.identity]}); "
                    "each RUN of a system must be another seed"
                )
            seen[files.identity] = spec
            provenance = (_read_json(files, EVAL_REPORT) or {}).get("provenance")
            runs.append(Run(f"{name}[{len(runs)}] {files.label}", test_sets_from_reports(files), provenance))
        systems.append(System(name, runs))
    return systems


# what decides the bits in every mode, and what decides them only outside portable numerics
_ALWAYS = ("numerics", "torch", "mkl", "onednn", "precision")
_UNLESS_PORTABLE = ("cpu", "aten_cpu_capability", "threads", "deterministic", "device")


def provenance_warnings(systems: Sequence[System]) -> list[str]:
    """One line per provenance field in which the compared runs differ, where that may move scores.

    Portable numerics give the same bits on any x86-64 CPU at the same library versions, so there
    a CPU difference is harmless; otherwise a difference between systems may be the hardware's.
    """
    runs = [r for s in systems for r in s.runs]
    known = [r for r in runs if r.provenance]
    lines = [f"{r.label}: no provenance (reports/eval/report.json from an older evaluate)" for r in runs
             if not r.provenance]
    portable = all(r.provenance.get("numerics") == "portable" for r in known)
    for key in _ALWAYS + (() if portable else _UNLESS_PORTABLE):
        values = {str(r.provenance.get(key)): r.label for r in known}
        if len(values) > 1:
            seen = "; ".join(f"{v} ({label})" for v, label in values.items())
            lines.append(f"runs differ in {key}: {seen}: a score difference may come from this, not from the system")
    return lines


def common_test_sets(systems: Sequence[System]) -> tuple[list[str], list[str]]:
    """Test sets every run has (baseline order) and those skipped; fail on differing sentences."""
    runs = [run for system in systems for run in system.runs]
    first = runs[0]
    keys = [k for k in first.test_sets if all(k in r.test_sets for r in runs)]
    skipped = sorted({k for r in runs for k in r.test_sets} - set(keys))
    if not keys:
        listing = "; ".join(f"{r.label}: {sorted(r.test_sets)}" for r in runs)
        raise InputError(f"the systems share no test set ({listing})")
    for key in keys:
        ref = first.test_sets[key]
        for run in runs[1:]:
            other = run.test_sets[key]
            if len(other.sources) != len(ref.sources):
                raise InputError(
                    f"{run.label}: test set {key} has {len(other.sources)} sentences, "
                    f"{first.label} has {len(ref.sources)}: not the same test sentences"
                )
            if len(other.references) != len(ref.references):
                raise InputError(
                    f"{run.label}: test set {key} has {len(other.references)} reference(s) per sentence, "
                    f"{first.label} has {len(ref.references)}: not the same test sentences"
                )
            mine, theirs = zip(ref.sources, *ref.references), zip(other.sources, *other.references)
            for i, (a, b) in enumerate(zip(mine, theirs)):
                if a != b:
                    raise InputError(
                        f"{run.label}: test set {key}, sentence {i + 1} differs from {first.label}: "
                        "not the same test sentences"
                    )
    return keys, skipped


# --------------------------------------------------------------------------------------------
# Statistics (sacreBLEU)


@dataclass(frozen=True)
class Settings:
    seed: int = 12345
    bootstrap_samples: int = 1000
    ar_trials: int = 10000
    alpha: float = 0.05
    jobs: int = 1

    def __post_init__(self) -> None:
        # sacreBLEU's PairedTest resamples with `seed if seed else None`: 0 would be a fresh random
        # draw on every call while the report says seed:0
        if self.seed == 0:
            raise InputError(
                "--seed 0: sacreBLEU reads 0 as no seed (other p-values on every call); expected a seed >= 1"
            )
        if self.seed < 0:
            raise InputError(f"--seed {self.seed}: expected a seed >= 1")


def _metrics(references: Sequence[Sequence[str]]) -> dict[str, Any]:
    """sacreBLEU metrics as ``s2s.metrics.score_corpus`` configures them, every reference stream cached."""
    from sacrebleu.metrics import BLEU, CHRF

    streams = [list(r) for r in references]
    return {"bleu": BLEU(references=streams), "chrf": CHRF(references=streams)}


def _paired_test(
    named: list[tuple[str, Sequence[str]]],
    references: Sequence[Sequence[str]],
    test_type: str,
    settings: Settings,
) -> dict[str, list[Any]]:
    """sacreBLEU's PairedTest: the first system is the baseline. Returns {metric: [Result, ...]}."""
    from sacrebleu.significance import PairedTest

    os.environ["SACREBLEU_SEED"] = str(settings.seed)  # sacreBLEU's own knob for its resampling seed
    metrics = _metrics(references)
    n = settings.bootstrap_samples if test_type == "bs" else settings.ar_trials
    test = PairedTest(named, metrics, references=None, test_type=test_type, n_samples=n, n_jobs=settings.jobs)
    _, scores = test()
    by_name = {m.__class__.__name__.lower(): key for key, m in test.metrics.items()}
    return {metric: scores[by_name[metric]] for metric in METRICS}


def signatures(settings: Settings) -> dict[str, str]:
    metrics = _metrics([["a"]])
    return {name: str(m.get_signature()) for name, m in metrics.items()} | {
        "resampling": f"sacrebleu.significance.PairedTest seed:{settings.seed}|bs:{settings.bootstrap_samples}"
        f"|ar:{settings.ar_trials}"
    }


def _num(x: Any) -> float | None:
    """sacreBLEU returns numpy scalars (float32 bootstrap means): plain floats for JSON."""
    return None if x is None else float(x)


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def compare_test_set(systems: Sequence[System], key: str, settings: Settings) -> dict[str, Any]:
    """Scores, CIs, mean ± std over runs, and paired tests against ``systems[0]`` on one test set."""
    references = systems[0].runs[0].test_sets[key].references
    out: dict[str, Any] = {"sentences": len(references[0]), "references": len(references), "systems": {}}
    for system in systems:
        runs = []
        for run in system.runs:
            hyps = run.test_sets[key].hypotheses
            result = _paired_test([(run.label, hyps)], references, "bs", settings)
            runs.append(
                {
                    "run": run.label,
                    **{
                        m: {
                            "score": _num(result[m][0].score),
                            "ci95": _num(result[m][0].ci),
                            "bootstrap_mean": _num(result[m][0].mean),
                        }
                        for m in METRICS
                    },
                }
            )
        entry: dict[str, Any] = {"runs": runs}
        for m in METRICS:
            mean, std = _mean_std([r[m]["score"] for r in runs])
            entry[m] = {"mean": mean, "std": std, "n": len(runs)}
        out["systems"][system.name] = entry

    baseline = systems[0]
    base_entry = out["systems"][baseline.name]
    for system in systems[1:]:
        pairs: dict[str, list[dict[str, Any]]] = {m: [] for m in METRICS}
        for j, base_run in enumerate(baseline.runs):
            named = [(base_run.label, base_run.test_sets[key].hypotheses)] + [
                (run.label, run.test_sets[key].hypotheses) for run in system.runs
            ]
            bs = _paired_test(named, references, "bs", settings)
            ar = _paired_test(named, references, "ar", settings)
            for m in METRICS:
                for i, run in enumerate(system.runs):
                    pair = {"run": i, "baseline_run": j, "p_bs": _num(bs[m][i + 1].p_value)}
                    pair["p_ar"] = _num(ar[m][i + 1].p_value)
                    if run.test_sets[key].hypotheses == base_run.test_sets[key].hypotheses:
                        # identical outputs: there is no difference to test.  sacreBLEU counts only
                        # resamples *above* the observed difference (0 here) and so returns its
                        # smallest p-value, 1/(n+1), as MultEval did (jhclark/multeval issue 5).
                        pair.update(p_bs=1.0, p_ar=1.0, identical=True)
                    elif bs[m][i + 1].score == bs[m][0].score:
                        # different outputs, exactly the same score (e.g. BLEU 0.0 for both): the
                        # same strict count makes a tie look significant; a tie is no difference.
                        pair.update(p_bs=1.0, p_ar=1.0, tie=True)
                    pairs[m].append(pair)
        entry = out["systems"][system.name]
        entry["vs_baseline"] = {}
        for m in METRICS:
            p_bs = max(p["p_bs"] for p in pairs[m])
            p_ar = max(p["p_ar"] for p in pairs[m])
            entry["vs_baseline"][m] = {
                "delta_mean": entry[m]["mean"] - base_entry[m]["mean"],
                "p_bs_max": p_bs,
                "p_ar_max": p_ar,
                "pairs_significant": sum(p["p_bs"] < settings.alpha and p["p_ar"] < settings.alpha for p in pairs[m]),
                "pairs": pairs[m],
                "significant": p_bs < settings.alpha and p_ar < settings.alpha,
            }
    return out


def compare(systems: Sequence[System], settings: Settings) -> dict[str, Any]:
    """The full report (JSON-serialisable); ``systems[0]`` is the baseline."""
    if len(systems) < 2:
        raise InputError("--system: give at least two systems (the first, or --baseline, is the baseline)")
    keys, skipped = common_test_sets(systems)
    return {
        "baseline": systems[0].name,
        "settings": {
            "seed": settings.seed,
            "bootstrap_samples": settings.bootstrap_samples,
            "ar_trials": settings.ar_trials,
            "alpha": settings.alpha,
            "significance_rule": "largest p over all (system run, baseline run) pairs, both tests, < alpha",
        },
        "signatures": signatures(settings),
        "systems": {s.name: [r.label for r in s.runs] for s in systems},
        "test_sets": {key: compare_test_set(systems, key, settings) for key in keys},
        "skipped_test_sets": skipped,
    }


# --------------------------------------------------------------------------------------------
# Writing the report


def _fmt(x: float | None, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _score_cell(summary: Mapping[str, Any], runs: Sequence[Mapping[str, Any]], metric: str) -> str:
    if summary["n"] == 1:
        return f"{_fmt(runs[0][metric]['score'])} ± {_fmt(runs[0][metric]['ci95'])} (95% CI)"
    return f"{_fmt(summary['mean'])} ± {_fmt(summary['std'])} (std, {summary['n']} seeds)"


def markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# System comparison (baseline: {report['baseline']})",
        "",
        "Cased, detokenized sacreBLEU BLEU and chrF on the raw references. One run: score ± half-width of "
        "its 95% bootstrap confidence interval. Several runs (seeds): mean ± standard deviation over them. "
        "p: paired bootstrap resampling (bs) / approximate randomization (ar) against the baseline, the "
        "largest over all (run, baseline run) pairs; * = significant at "
        f"{report['settings']['alpha']} in both tests for every pair. A pair with identical outputs or "
        "exactly equal scores has p = 1 (no difference to test).",
        "",
    ]
    for key, data in report["test_sets"].items():
        lines += [
            f"## {key} ({data['sentences']} sentences, {data.get('references', 1)} reference(s) each)",
            "",
            "| system | runs | BLEU | chrF | ΔBLEU | p BLEU (bs / ar) | ΔchrF | p chrF (bs / ar) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, entry in data["systems"].items():
            cells = [name, str(entry["bleu"]["n"])]
            cells += [_score_cell(entry[m], entry["runs"], m) for m in METRICS]
            vs = entry.get("vs_baseline")
            for m in METRICS:
                if vs is None:
                    cells += ["baseline", ""]
                else:
                    v = vs[m]
                    star = "*" if v["significant"] else ""
                    cells += [f"{v['delta_mean']:+.2f}{star}", f"{v['p_bs_max']:.4f} / {v['p_ar_max']:.4f}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines += ["", "| run | BLEU (95% CI) | chrF (95% CI) |", "|---|---|---|"]
        for entry in data["systems"].values():
            for run in entry["runs"]:
                cells = [run["run"]] + [f"{_fmt(run[m]['score'])} ± {_fmt(run[m]['ci95'])}" for m in METRICS]
                lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if report["skipped_test_sets"]:
        lines += [f"Not in every run, skipped: {', '.join(report['skipped_test_sets'])}.", ""]
    lines += ["Signatures:", ""] + [f"- {k}: `{v}`" for k, v in report["signatures"].items()]
    return "\n".join(lines) + "\n"


PLOT_FIELDS = ("label", "test_set", "system", "run", "bleu", "bleu_ci95", "chrf", "chrf_ci95")


def plot_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (test set, system, run): the data file for ``dvc plots``; ``label`` names the
    row uniquely (a bar of dvc.yaml's compare plot: bars sharing a label would overlap)."""
    rows = []
    for key, data in report["test_sets"].items():
        for name, entry in data["systems"].items():
            for i, run in enumerate(entry["runs"]):
                rows.append(
                    {
                        "label": f"{key} | {name}[{i}]",
                        "test_set": key,
                        "system": name,
                        "run": i,
                        "bleu": round(run["bleu"]["score"], 4),
                        "bleu_ci95": round(run["bleu"]["ci95"], 4),
                        "chrf": round(run["chrf"]["score"], 4),
                        "chrf_ci95": round(run["chrf"]["ci95"], 4),
                    }
                )
    return rows


# reports/compare/dvc.yaml: the chart of scores.csv for `dvc plots show`, declared only where the
# comparison has been written (a plot declared in the project's dvc.yaml fails on every fresh experiment)
PLOTS_YAML = """\
# written by python src/compare.py with scores.csv: `dvc plots show` draws it
plots:
  - compare (BLEU per test set, system and run):
      template: bar_horizontal   # x is the value axis, y the bars
      x: bleu
      y:
        scores.csv: label
"""


def write_report(report: Mapping[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """compare.json, compare.md, scores.csv and the dvc.yaml that plots it, each written atomically."""
    out = Path(out_dir)
    paths = {
        "json": out / "compare.json",
        "markdown": out / "compare.md",
        "plot": out / "scores.csv",
        "plots_yaml": out / "dvc.yaml",
    }
    write_json_atomic(paths["json"], report)
    write_text_atomic(paths["markdown"], markdown(report))
    with atomic_path(paths["plot"]) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=PLOT_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(plot_rows(report))
    write_text_atomic(paths["plots_yaml"], PLOTS_YAML)
    return paths


def mlflow_metrics(report: Mapping[str, Any]) -> dict[str, float]:
    """Flat metrics for MLflow: ``<metric>_mean/<test set>/<system>``, p-values against the baseline."""
    flat: dict[str, float] = {}
    for key, data in report["test_sets"].items():
        ts = key.replace(" ", "/")
        for name, entry in data["systems"].items():
            for m in METRICS:
                flat[f"{m}_mean/{ts}/{name}"] = entry[m]["mean"]
                if entry[m]["std"] is not None:
                    flat[f"{m}_std/{ts}/{name}"] = entry[m]["std"]
                if "vs_baseline" in entry:
                    flat[f"{m}_p_bs/{ts}/{name}"] = entry["vs_baseline"][m]["p_bs_max"]
                    flat[f"{m}_p_ar/{ts}/{name}"] = entry["vs_baseline"][m]["p_ar_max"]
    return flat

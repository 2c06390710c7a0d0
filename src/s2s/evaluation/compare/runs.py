"""Compare trained systems: scores with confidence intervals, seeds, paired significance.

A *system* is one recipe; it has one or more *runs* (the same recipe trained with different
seeds).  Every run is read through :class:`~s2s.evaluation.compare.run_files.RunFiles` (a folder,
a DVC experiment, an MLflow run), and :func:`test_sets_from_reports` is the one function that
knows the evaluate stage's file layout (``reports/eval/``: metrics.json naming the test sets,
translations/<set>.tsv).

All statistics are sacreBLEU's own (``sacrebleu.significance.PairedTest``, the code behind
``sacrebleu --paired-bs`` / ``--paired-ar``), with the metrics configured as ``s2s.evaluation.metrics``
scores them (cased, detokenized BLEU and chrF on raw references, every reference stream of a
test set that has several):

- per run: the score and its 95% confidence interval from bootstrap resampling;
- per system: mean and standard deviation over its runs (seeds); two runs of one system with
  byte-identical translations are refused (one run counted as two seeds: a std of 0 that means nothing);
- against the baseline: paired bootstrap resampling and approximate randomization p-values for
  every pair (system run, baseline run).  Seeds of two systems are unrelated, so no pairing is
  privileged: the summary p-value is the largest over all pairs, and a difference is called
  significant only when every pair is (a conservative rule; all pairs are in the JSON report).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from s2s.common.io import InputError
from s2s.evaluation.compare.run_files import (
    EVAL_METRICS,
    EVAL_REPORT,
    EVAL_TRANSLATIONS,
    OLD_METRICS,
    OLD_TRANSLATIONS,
    RunFiles,
)

METRICS = ("bleu", "chrf")


# --------------------------------------------------------------------------------------------
# The evaluate stage's file layout (the one place that knows it)


@dataclass(frozen=True)
class TestSet:
    """One test set in one direction, as one run decoded it: ``references`` holds one or more
    reference streams, each aligned with ``sources`` (sacreBLEU scores against all of them)."""

    sources: tuple[str, ...]
    references: tuple[tuple[str, ...], ...]
    hypotheses: tuple[str, ...]
    # the lowercased, Moses-tokenized BLEU against the official tokenized references, as evaluate
    # scored it (reports/eval/metrics.json): compared as mean ± std, not resampled here
    bleu_tok: float | None = None


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
        for key, test_set in _parse_translations(text, f"{run.label}: {relpath}", name).items():
            scores = (names[name] or {}).get(key.split(" ", 1)[1]) if isinstance(names[name], dict) else None
            bleu_tok = scores.get("bleu_tok") if isinstance(scores, dict) else None
            out[key] = replace(test_set, bleu_tok=float(bleu_tok)) if isinstance(bleu_tok, int | float) else test_set
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
        translated: dict[str, str] = {}  # digest of every hypothesis -> the spec that had them
        for spec in specs:
            files = opener(spec)
            if files.identity in seen:  # one run counted as two seeds: a spread of 0 that means nothing
                raise InputError(
                    f"--system {name}: {spec} is given twice in system {name} (as {seen[files.identity]}); "
                    "each RUN of a system must be another seed"
                )
            seen[files.identity] = spec
            provenance = (_read_json(files, EVAL_REPORT) or {}).get("provenance")
            test_sets = test_sets_from_reports(files)
            digest = translations_digest(test_sets)
            if digest in translated:  # a copied folder, or a folder and its MLflow run: one seed, not two
                raise InputError(
                    f"--system {name}: {spec} has byte-identical translations to {translated[digest]} on every "
                    "test set: the same run given twice (a copy, or a folder and its mlflow: run), not another "
                    "seed; give each seed's run once"
                )
            translated[digest] = spec
            runs.append(Run(f"{name}[{len(runs)}] {files.label}", test_sets, provenance))
        systems.append(System(name, runs))
    return systems


def translations_digest(test_sets: dict[str, TestSet]) -> str:
    """sha256 of every hypothesis of every test set (and direction): equal for byte-identical output.

    Two trainings of other seeds never translate every sentence alike; under portable numerics
    equal translations are exactly "the same run" (a copy of its folder, or its MLflow run)."""
    import hashlib

    digest = hashlib.sha256()
    for key in sorted(test_sets):
        digest.update(json.dumps([key, test_sets[key].hypotheses], ensure_ascii=False).encode())
    return digest.hexdigest()


# what decides the bits in every mode (dotted: inside a provenance section), and what decides them
# only outside portable numerics
_ALWAYS = ("numerics", "env.MKL_CBWR", "torch", "mkl", "onednn", "precision")
_UNLESS_PORTABLE = ("cpu", "aten_cpu_capability", "threads", "deterministic", "device", "gpu", "autocast_dtype", "tf32")


def provenance_warnings(systems: Sequence[System]) -> list[str]:
    """One line per provenance field in which the compared runs differ, where that may move scores.

    Portable numerics give the same bits on any x86-64 CPU at the same library versions, so there
    a CPU difference is harmless; otherwise a difference between systems may be the hardware's.
    """
    runs = [r for s in systems for r in s.runs]
    known = [r for r in runs if r.provenance]
    lines = [f"{r.label}: no provenance (reports/eval/report.json from an older evaluate)" for r in runs
             if not r.provenance]
    lines += _differences([(r.label, r.provenance or {}) for r in known], "")
    # how the weights were made (the training's provenance, recorded beside the evaluation's)
    trained = [(r.label, r.provenance["training"]) for r in known if r.provenance.get("training")]
    if len(trained) > 1:
        lines += _differences(trained, "training ")
    return lines


def _differences(provs: Sequence[tuple[str, dict[str, Any]]], what: str) -> list[str]:
    lines = []
    portable = all(p.get("numerics") == "portable" for _, p in provs)
    packages = sorted({f"packages.{name}" for _, p in provs for name in (p.get("packages") or {})})
    for key in _ALWAYS + tuple(packages) + (() if portable else _UNLESS_PORTABLE):
        values = {str(_field(p, key)): label for label, p in provs}
        if len(values) > 1:
            seen = "; ".join(f"{v} ({label})" for v, label in values.items())
            lines.append(
                f"runs differ in {what}{key}: {seen}: a score difference may come from this, not from the system"
            )
    return lines


def _field(provenance: dict[str, Any], key: str) -> Any:
    """``provenance[a][b]`` for ``a.b`` (None where a level is missing: an older report)."""
    value: Any = provenance
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


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

"""The compare script: sacreBLEU's paired tests, seeds, report files, run sources, bad input."""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

WORDS = (
    "ein mann eine frau zwei kinder hund spielt im park auf der straße mit einem ball rot blauen "
    "sitzt steht läuft vor dem haus neben großen kleinen wasser strand gras baum schwarz weißen"
).split()
SEED = "12345"
FAST = ["--bootstrap-samples", "200", "--ar-trials", "300", "--mlflow", "false"]
PRIMARY, SECOND = "test_2016_flickr", "test_2017_mscoco"  # SECOND has two references per sentence
KEY, KEY2 = f"{PRIMARY} en-de", f"{SECOND} en-de"


def sentences(n: int = 120, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    refs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + " ." for _ in range(n)]
    srcs = [f"source {i}" for i in range(n)]
    return srcs, refs


def degrade(refs: list[str], rate: float, seed: int) -> list[str]:
    """A synthetic system: each reference word replaced by a random word with probability ``rate``."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) if rng.random() < rate else w for w in r.split()) for r in refs]


# {test set: (sources, reference streams, hypotheses)}
Sets = dict[str, tuple[list[str], list[list[str]], list[str]]]


def eval_data() -> dict[str, tuple[list[str], list[list[str]]]]:
    """The test sets' sources and reference streams: PRIMARY with one reference, SECOND with two."""
    srcs, refs = sentences()
    srcs2, refs2 = sentences(60, seed=1)
    return {PRIMARY: (srcs, [refs]), SECOND: (srcs2, [refs2, degrade(refs2, 0.4, 99)])}


def system_sets(rate: float, seed: int) -> Sets:
    """A synthetic system's output on every test set (its first reference degraded at ``rate``)."""
    return {name: (s, r, degrade(r[0], rate, seed + i)) for i, (name, (s, r)) in enumerate(eval_data().items())}


def write_run(folder: Path, sets: Sets) -> Path:
    """A run folder as the evaluate stage leaves it: reports/eval/metrics.json naming the test sets,
    reports/eval/translations/<set>.tsv (reference_2... for a set with several), reports/metrics.json."""
    (folder / "reports/eval/translations").mkdir(parents=True, exist_ok=True)
    for name, (srcs, refs, hyps) in sets.items():
        with open(folder / f"reports/eval/translations/{name}.tsv", "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
            extra = [f"reference_{k}" for k in range(2, len(refs) + 1)]
            writer.writerow(["direction", "source", "reference", "hypothesis", *extra])
            for s, h, *r in zip(srcs, hyps, *refs, strict=True):
                writer.writerow(["en-de", s, r[0], h, *r[1:]])
    metrics = {"bleu": 0.0, "split": next(iter(sets)), "test_sets": {name: {"en-de": {}} for name in sets}}
    (folder / "reports/eval/metrics.json").write_text(json.dumps(metrics))
    (folder / "reports/metrics.json").write_text(json.dumps(metrics))
    return folder


def run_compare(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    full_env.update({"PYTHONPATH": str(ROOT / "src"), **(env or {})})
    return subprocess.run(
        [sys.executable, str(ROOT / "src/compare.py"), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("runs")
    out = {}
    systems = (("base", 0.5, 1), ("base2", 0.5, 20), ("good", 0.15, 30), ("good2", 0.15, 40), ("close", 0.48, 50))
    for name, rate, seed in systems:
        out[name] = write_run(base / name, system_sets(rate, seed))
    return out


def report_of(out_dir: Path) -> dict:
    return json.loads((out_dir / "compare.json").read_text())


def sacrebleu_cli(refs: list[Path], systems: list[Path], test: str, n: int) -> list[dict[str, dict[str, float]]]:
    """Per system {"BLEU"/"chrF2": {score, p_value[, mean, ci]}} from the sacreBLEU command line.

    Its JSON output fails on the bootstrap's float32 means, so the bootstrap table is read from
    the text output (4 decimals); approximate randomization comes as JSON (full precision).
    """
    cmd = [str(Path(sys.executable).parent / "sacrebleu"), *map(str, refs), "-i", *map(str, systems),
           f"--paired-{test}", f"--paired-{test}-n", str(n), "-m", "bleu", "chrf", "--no-color"]
    env = {**os.environ, "SACREBLEU_SEED": SEED}
    if test == "ar":
        out = subprocess.run([*cmd, "--format", "json"], env=env, capture_output=True, text=True, timeout=300,
                             check=True)
        return [{k: v for k, v in row.items() if k != "system"} for row in json.loads(out.stdout)]
    out = subprocess.run([*cmd, "--format", "text", "-w", "4"], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    cells = [tuple(map(float, m)) for m in re.findall(r"(\d+\.\d+) \((\d+\.\d+) ± (\d+\.\d+)\)", out)]
    pvals = [float(p) for p in re.findall(r"\(p = (\d+\.\d+)\)", out)]
    assert len(cells) == 2 * len(systems) and len(pvals) == 2 * (len(systems) - 1), out
    rows = []
    for i in range(len(systems)):
        row = {}
        for j, key in enumerate(("BLEU", "chrF2")):
            score, mean, ci = cells[2 * i + j]
            row[key] = {"score": score, "mean": mean, "ci": ci, "p_value": pvals[2 * (i - 1) + j] if i else None}
        rows.append(row)
    return rows


@pytest.mark.parametrize("test", ["bs", "ar"])
def test_paired_tests_agree_with_sacrebleu_command_line(runs: dict, tmp_path: Path, test: str) -> None:
    """Same scores, p-values (and bootstrap means/CIs) as `sacrebleu ref [ref2] -i a b c --paired-bs/-ar`,
    seed fixed, on every test set: SECOND is scored against both of its references."""
    n = 200 if test == "bs" else 300
    names = ("base", "close", "good")
    out = tmp_path / "out"
    ok(run_compare(*(f"--system={k}={runs[k]}" for k in names), "--out-dir", str(out), "--seed", SEED,
                   "--bootstrap-samples", "200", "--ar-trials", "300", "--mlflow", "false"))
    report = report_of(out)["test_sets"]
    assert list(report) == [KEY, KEY2]
    tol = 1e-4 if test == "bs" else 1e-12  # the text output's 4 decimals
    for set_name, key in ((PRIMARY, KEY), (SECOND, KEY2)):
        files = {}
        for name in names:
            with open(runs[name] / f"reports/eval/translations/{set_name}.tsv", encoding="utf-8", newline="") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            files[name] = tmp_path / f"{set_name}.{name}.txt"
            files[name].write_text("".join(r["hypothesis"] + "\n" for r in rows), encoding="utf-8")
        refs = []
        for k, stream in enumerate(eval_data()[set_name][1]):
            refs.append(tmp_path / f"{set_name}.ref{k}.txt")
            refs[-1].write_text("".join(r + "\n" for r in stream), encoding="utf-8")
        assert len(refs) == (2 if set_name == SECOND else 1)
        expected = sacrebleu_cli(refs, list(files.values()), test, n)
        systems = report[key]["systems"]
        assert report[key]["references"] == len(refs)
        for i, name in enumerate(files):
            for metric, cli_key in {"bleu": "BLEU", "chrf": "chrF2"}.items():
                assert systems[name][metric]["mean"] == pytest.approx(expected[i][cli_key]["score"], abs=tol)
                if test == "bs":
                    run = systems[name]["runs"][0][metric]
                    assert run["ci95"] == pytest.approx(expected[i][cli_key]["ci"], abs=tol)
                    assert run["bootstrap_mean"] == pytest.approx(expected[i][cli_key]["mean"], abs=tol)
                if i:
                    assert systems[name]["vs_baseline"][metric][f"p_{test}_max"] == pytest.approx(
                        expected[i][cli_key]["p_value"], abs=tol
                    )
    systems = report[KEY]["systems"]
    assert systems["good"]["vs_baseline"]["bleu"][f"p_{test}_max"] < 0.05 < systems["close"]["vs_baseline"]["bleu"][
        f"p_{test}_max"
    ]


def test_the_same_call_gives_the_same_p_values(runs: dict, tmp_path: Path) -> None:
    """The resampling seed fixes every p-value (seed 0, which sacreBLEU reads as "no seed", is refused)."""
    reports = []
    for k in range(2):
        ok(run_compare(f"--system=a={runs['base']}", f"--system=b={runs['close']}", "--seed", "1",
                       "--out-dir", str(tmp_path / str(k)), *FAST))
        reports.append(report_of(tmp_path / str(k)))
    vs = [r["test_sets"][KEY]["systems"]["b"]["vs_baseline"] for r in reports]
    assert vs[0] == vs[1]
    assert reports[0]["signatures"]["resampling"].startswith("sacrebleu.significance.PairedTest seed:1|")


def test_a_system_compared_with_itself_is_not_significant(runs: dict, tmp_path: Path) -> None:
    ok(run_compare(f"--system=a={runs['base']}", f"--system=b={runs['base']}", "--out-dir", str(tmp_path), *FAST))
    report = report_of(tmp_path)["test_sets"]
    assert list(report) == [KEY, KEY2]
    for key in (KEY, KEY2):
        vs = report[key]["systems"]["b"]["vs_baseline"]
        for metric in ("bleu", "chrf"):
            assert vs[metric]["delta_mean"] == 0.0
            assert vs[metric]["p_ar_max"] == vs[metric]["p_bs_max"] == 1.0
            assert vs[metric]["pairs"][0]["identical"]
            assert not vs[metric]["significant"]


def test_two_different_outputs_with_the_same_score_are_not_significant(tmp_path: Path) -> None:
    """Two untrained models: different outputs, BLEU and chrF 0.0 for both.  sacreBLEU's strict
    count (resamples *above* the observed difference) alone would call this tie significant."""
    def junk(offset: int) -> Sets:
        return {name: (s, r, [f"{offset + i} {offset + 2 * i}" for i in range(len(s))])
                for name, (s, r) in eval_data().items()}

    a, b = write_run(tmp_path / "a", junk(1000)), write_run(tmp_path / "b", junk(5000))
    ok(run_compare(f"--system=a={a}", f"--system=b={b}", "--out-dir", str(tmp_path / "out"), *FAST))
    vs = report_of(tmp_path / "out")["test_sets"][KEY]["systems"]["b"]["vs_baseline"]
    for metric in ("bleu", "chrf"):
        pair = vs[metric]["pairs"][0]
        assert vs[metric]["delta_mean"] == 0.0 and pair["tie"] and "identical" not in pair
        assert pair["p_bs"] == pair["p_ar"] == 1.0 and not vs[metric]["significant"]


def test_a_clearly_better_system_is_significant_a_close_one_is_not(runs: dict, tmp_path: Path) -> None:
    ok(run_compare(f"--system=base={runs['base']}", f"--system=good={runs['good']}",
                   f"--system=close={runs['close']}", "--out-dir", str(tmp_path), *FAST))
    systems = report_of(tmp_path)["test_sets"][KEY]["systems"]
    good, close = systems["good"]["vs_baseline"], systems["close"]["vs_baseline"]
    for metric in ("bleu", "chrf"):
        assert good[metric]["delta_mean"] > 10
        assert good[metric]["p_bs_max"] < 0.05 and good[metric]["p_ar_max"] < 0.05
        assert good[metric]["significant"]
    assert not close["bleu"]["significant"]
    assert close["bleu"]["p_ar_max"] > 0.05


def test_seeds_give_mean_and_std_and_every_pair_is_tested(runs: dict, tmp_path: Path) -> None:
    ok(run_compare(f"--system=good={runs['good']},{runs['good2']}", f"--system=base={runs['base']},{runs['base2']}",
                   "--baseline", "base", "--out-dir", str(tmp_path), *FAST))
    report = report_of(tmp_path)
    assert report["baseline"] == "base"
    systems = report["test_sets"][KEY]["systems"]
    assert list(systems) == ["base", "good"]
    good = systems["good"]
    scores = [r["bleu"]["score"] for r in good["runs"]]
    assert len(scores) == 2 and scores[0] != scores[1]
    assert good["bleu"]["mean"] == pytest.approx(sum(scores) / 2)
    assert good["bleu"]["std"] == pytest.approx(abs(scores[0] - scores[1]) / 2 ** 0.5)
    pairs = good["vs_baseline"]["bleu"]["pairs"]
    assert sorted((p["run"], p["baseline_run"]) for p in pairs) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert good["vs_baseline"]["bleu"]["p_bs_max"] == max(p["p_bs"] for p in pairs)
    md = (tmp_path / "compare.md").read_text()
    assert "(std, 2 seeds)" in md and "| good | 2 |" in md
    assert f"## {KEY2} (60 sentences, 2 reference(s) each)" in md
    rows = list(csv.DictReader(open(tmp_path / "scores.csv")))
    assert len({r["label"] for r in rows}) == len(rows) == 8  # one bar each in dvc.yaml's compare plot
    plot = [r for r in rows if r["test_set"] == KEY]
    assert [(r["system"], r["run"]) for r in plot] == [("base", "0"), ("base", "1"), ("good", "0"), ("good", "1")]
    assert float(plot[2]["bleu"]) == pytest.approx(scores[0], abs=1e-4)


def test_reports_folder_and_dvc_experiment_are_runs_too(runs: dict, tmp_path: Path) -> None:
    """A run given as its reports/ folder, and as a DVC experiment name (read from the experiment's commit)."""
    repo = tmp_path / "repo"
    shutil.copytree(runs["good"], repo)
    git = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t"]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    for cmd in ([*git, "init", "-q"], ["dvc", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "good"]):
        subprocess.run(cmd, cwd=repo, env=env, check=True, timeout=120)
    shutil.copytree(runs["base"] / "reports", repo / "reports", dirs_exist_ok=True)
    subprocess.run(["dvc", "exp", "save", "-n", "basexp"], cwd=repo, env=env, check=True, timeout=120,
                   capture_output=True)
    shutil.copytree(runs["good"] / "reports", repo / "reports", dirs_exist_ok=True)  # workspace: good
    out = tmp_path / "out"
    ok(run_compare("--system=b=dvc:basexp", f"--system=g={runs['good']}/reports", "--out-dir", str(out), *FAST,
                   cwd=repo))
    ref = tmp_path / "ref"
    ok(run_compare(f"--system=b={runs['base']}", f"--system=g={runs['good']}", "--out-dir", str(ref), *FAST))
    for key in (KEY, KEY2):
        systems = report_of(out)["test_sets"][key]["systems"]
        expected = report_of(ref)["test_sets"][key]["systems"]
        assert systems["b"]["bleu"]["mean"] == expected["b"]["bleu"]["mean"]
        assert systems["g"]["bleu"]["mean"] == expected["g"]["bleu"]["mean"]
        assert systems["b"]["bleu"]["mean"] < systems["g"]["bleu"]["mean"]
    bad = run_compare("--system=b=dvc:nosuchexp", f"--system=g={runs['good']}", "--out-dir", str(out), *FAST,
                      cwd=repo)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: dvc:nosuchexp")


def test_mlflow_run_ids_are_runs_and_the_report_is_logged(runs: dict, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("seq2seq-test", artifact_location=str(tmp_path / "artifacts"))
    ids = {}
    for name in ("base", "good"):
        run = client.create_run(exp)
        ids[name] = run.info.run_id
        if name == "good":  # evaluation logged as a nested run under the training run
            run = client.create_run(exp, tags={"mlflow.parentRunId": ids[name]})
        # as evaluate logs them: eval/metrics.json, eval/translations/<set>.tsv
        client.log_artifact(run.info.run_id, str(runs[name] / "reports/eval/metrics.json"), "eval")
        client.log_artifacts(run.info.run_id, str(runs[name] / "reports/eval/translations"), "eval/translations")
    out = tmp_path / "out"
    env = {"MLFLOW_TRACKING_URI": uri}
    ok(run_compare(f"--system=b=mlflow:{ids['base']}", f"--system=g=mlflow:{ids['good']}", "--out-dir", str(out),
                   "--bootstrap-samples", "200", "--ar-trials", "300", cwd=tmp_path, env=env))
    report = report_of(out)["test_sets"]
    assert list(report) == [KEY, KEY2] and report[KEY2]["references"] == 2
    ref = tmp_path / "ref"
    ok(run_compare(f"--system=b={runs['base']}", f"--system=g={runs['good']}", "--out-dir", str(ref), *FAST))
    for key in (KEY, KEY2):  # the same figures as from the run folders
        assert report[key]["systems"]["g"]["bleu"] == report_of(ref)["test_sets"][key]["systems"]["g"]["bleu"]
    systems = report[KEY]["systems"]
    assert systems["g"]["vs_baseline"]["bleu"]["significant"]
    logged = client.get_experiment_by_name("seq2seq-compare")
    assert logged is not None
    (compare_run,) = client.search_runs([logged.experiment_id])
    assert compare_run.data.metrics["bleu_mean/test_2016_flickr/en-de/g"] == pytest.approx(
        systems["g"]["bleu"]["mean"]
    )
    assert {a.path for a in client.list_artifacts(compare_run.info.run_id)} == {
        "compare.json", "compare.md", "scores.csv"
    }
    bad = run_compare(f"--system=b=mlflow:{'0' * 32}", f"--system=g=mlflow:{ids['good']}", "--out-dir", str(out),
                      *FAST, cwd=tmp_path, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(f"error: mlflow:{'0' * 32}")


@pytest.mark.parametrize(
    "case, needle",
    [
        ("missing folder", "folder not found"),
        ("other sentences", "not the same test sentences"),
        ("other second reference", f"test set {KEY2}, sentence 4 differs"),
        ("fewer references", f"test set {KEY2} has 1 reference(s) per sentence"),
        ("fewer sentences", "not the same test sentences"),
        ("no translations", "reports/eval/metrics.json not found"),
        ("missing test set file", f"reports/eval/translations/{SECOND}.tsv not found"),
        ("no test sets listed", "reports/eval/metrics.json lists no test_sets"),
        ("bad tsv", f"{PRIMARY}.tsv, line 3: 2 fields, expected 4"),
        ("one system", "at least two systems"),
        ("bad option", "expected NAME=RUN"),
        ("unknown baseline", "--baseline nope"),
        ("seed 0", "--seed 0: sacreBLEU reads 0 as no seed"),
        ("negative seed", "--seed -3: expected a seed >= 1"),
        ("same run twice", "is given twice in system b"),
        ("same folder twice, spelled differently", "is given twice in system b"),
        ("copied run folder", "byte-identical translations"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(runs: dict, tmp_path: Path, case: str, needle: str) -> None:
    sets = system_sets(0.3, 7)
    (srcs, refs, hyps), (srcs2, refs2, hyps2) = sets[PRIMARY], sets[SECOND]
    base = f"--system=a={runs['base']}"
    other = tmp_path / "other"
    if case == "missing folder":
        args = [base, f"--system=b={tmp_path / 'nope'}"]
    elif case == "other sentences":
        changed = list(refs[0])
        changed[7] = "ein anderer satz ."
        args = [base, f"--system=b={write_run(other, sets | {PRIMARY: (srcs, [changed], hyps)})}"]
    elif case == "other second reference":
        changed = list(refs2[1])
        changed[3] = "ein anderer satz ."
        args = [base, f"--system=b={write_run(other, sets | {SECOND: (srcs2, [refs2[0], changed], hyps2)})}"]
    elif case == "fewer references":
        args = [base, f"--system=b={write_run(other, sets | {SECOND: (srcs2, refs2[:1], hyps2)})}"]
    elif case == "fewer sentences":
        fewer = (srcs[:-1], [refs[0][:-1]], hyps[:-1])
        args = [base, f"--system=b={write_run(other, sets | {PRIMARY: fewer})}"]
    elif case == "no translations":
        other.mkdir()
        args = [base, f"--system=b={other}"]
    elif case == "missing test set file":
        (write_run(other, sets) / f"reports/eval/translations/{SECOND}.tsv").unlink()
        args = [base, f"--system=b={other}"]
    elif case == "no test sets listed":
        (write_run(other, sets) / "reports/eval/metrics.json").write_text(json.dumps({"bleu": 1.0}))
        args = [base, f"--system=b={other}"]
    elif case == "bad tsv":
        tsv = write_run(other, sets) / f"reports/eval/translations/{PRIMARY}.tsv"
        lines = tsv.read_text().splitlines()
        lines[2] = "en-de\tonly two"
        tsv.write_text("\n".join(lines) + "\n")
        args = [base, f"--system=b={other}"]
    elif case == "one system":
        args = [base]
    elif case == "bad option":
        args = [base, f"--system={runs['good']}"]
    elif case in ("seed 0", "negative seed"):
        args = [base, f"--system=b={runs['good']}", "--seed", "0" if case == "seed 0" else "-3"]
    elif case == "same run twice":  # one run counted as two seeds: a std of 0.00 that means nothing
        args = [base, f"--system=b={runs['good']},{runs['good2']},{runs['good']}"]
    elif case == "same folder twice, spelled differently":
        args = [base, f"--system=b={runs['good']},{runs['good']}/reports"]
    elif case == "copied run folder":  # issue 35: a copy of a run is the same seed, not another one
        shutil.copytree(runs["good"], other)
        args = [base, f"--system=b={runs['good']},{other}"]
    else:
        args = [base, f"--system=b={runs['good']}", "--baseline", "nope"]
    out = tmp_path / "out"
    result = run_compare(*args, "--out-dir", str(out), *FAST)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and needle in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing written


def test_a_run_in_the_old_single_file_layout_is_read(runs: dict, tmp_path: Path) -> None:
    """reports/translations.tsv (+ "split" in reports/metrics.json), as evaluate wrote before reports/eval/:
    its one test set is compared, the sets only the new run has are reported as skipped."""
    old = tmp_path / "old"
    (old / "reports").mkdir(parents=True)
    shutil.copy(runs["good"] / f"reports/eval/translations/{PRIMARY}.tsv", old / "reports/translations.tsv")
    (old / "reports/metrics.json").write_text(json.dumps({"split": PRIMARY}))
    out = tmp_path / "out"
    ok(run_compare(f"--system=new={runs['good']}", f"--system=old={old}/reports", "--out-dir", str(out), *FAST))
    report = report_of(out)
    assert list(report["test_sets"]) == [KEY] and report["skipped_test_sets"] == [KEY2]
    vs = report["test_sets"][KEY]["systems"]["old"]["vs_baseline"]["bleu"]
    assert vs["delta_mean"] == 0.0 and vs["pairs"][0]["identical"]


@pytest.mark.slow
def test_two_seeds_end_to_end(tiny_data: Path, tmp_path: Path) -> None:
    """The documented seed workflow on the tiny preset: train -m seed=1,2, evaluate -m, compare."""
    from conftest import SHORT_TRAINING, run_script, tiny_paths

    shutil.copytree(tiny_data / "prepared", tmp_path / "prepared")
    sweep = tmp_path / "seeds"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    paths = [p for p in tiny_paths(tmp_path) if not p.startswith("hydra.")]
    # generous limits: they only stop a hung run (a loaded 2-core machine takes minutes)
    run_script("train", "-m", "seed=1,2", *paths, SHORT_TRAINING, f"hydra.sweep.dir={sweep}", env=env, timeout=1800)
    run_script(
        "evaluate", "-m", "seed=1,2", *paths, f"hydra.sweep.dir={sweep}", "hydra.sweep.subdir=${hydra.job.num}/eval",
        "paths.model_dir=${hydra:runtime.output_dir}/../models",
        "paths.reports_dir=${hydra:runtime.output_dir}/../reports",
        "evaluate.robustness_levels=[0.0]", "evaluate.heatmaps=0",  # not what this test is about
        env=env, timeout=1800,
    )
    out = tmp_path / "compare"
    ok(run_compare(f"--system=seeds={sweep / '0'},{sweep / '1'}", f"--system=seed1={sweep / '0'}", "--out-dir",
                   str(out), *FAST))
    report = report_of(out)
    evaluated = json.loads((sweep / "0/reports/eval/metrics.json").read_text())["test_sets"]
    keys = [f"{name} {d}" for name, per_dir in evaluated.items() for d in per_dir]
    assert list(report["test_sets"]) == keys and len(keys) > 1 and keys[0] == f"{PRIMARY} en-de"
    assert report["test_sets"][keys[0]]["sentences"] == 100
    for key in keys:
        seeds = report["test_sets"][key]["systems"]["seeds"]
        one = [r["bleu"]["score"] for r in seeds["runs"]]
        assert seeds["bleu"]["n"] == 2 and seeds["bleu"]["std"] is not None
        assert report["test_sets"][key]["systems"]["seed1"]["bleu"]["mean"] == one[0]
        name, direction = key.split(" ")
        assert round(one[0], 2) == evaluated[name][direction]["bleu"]  # the same references as evaluate
    for name in ("compare.md", "compare.json", "scores.csv"):
        assert (out / name).stat().st_size > 0
    weights = [torch_load(sweep / str(i) / "models/model.pt")["state_dict"] for i in (0, 1)]
    assert any(not a.equal(b) for a, b in zip(weights[0].values(), weights[1].values(), strict=True))


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)

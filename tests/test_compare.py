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


def sentences(n: int = 120, seed: int = 0) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    refs = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 14))) + " ." for _ in range(n)]
    srcs = [f"source {i}" for i in range(n)]
    return srcs, refs


def degrade(refs: list[str], rate: float, seed: int) -> list[str]:
    """A synthetic system: each reference word replaced by a random word with probability ``rate``."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) if rng.random() < rate else w for w in r.split()) for r in refs]


def write_run(folder: Path, srcs: list[str], refs: list[str], hyps: list[str], split: str = "test_2016_flickr") -> Path:
    """A run folder as the evaluate stage leaves it (reports/translations.tsv + metrics.json)."""
    (folder / "reports").mkdir(parents=True, exist_ok=True)
    with open(folder / "reports/translations.tsv", "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["direction", "source", "reference", "hypothesis"])
        for s, r, h in zip(srcs, refs, hyps, strict=True):
            writer.writerow(["en-de", s, r, h])
    (folder / "reports/metrics.json").write_text(json.dumps({"split": split}))
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
    srcs, refs = sentences()
    out = {"refs": refs}
    systems = (("base", 0.5, 1), ("base2", 0.5, 2), ("good", 0.15, 3), ("good2", 0.15, 4), ("close", 0.48, 5))
    for name, rate, seed in systems:
        out[name] = write_run(base / name, srcs, refs, degrade(refs, rate, seed))
    return out


def report_of(out_dir: Path) -> dict:
    return json.loads((out_dir / "compare.json").read_text())


def sacrebleu_cli(ref: Path, systems: list[Path], test: str, n: int) -> list[dict[str, dict[str, float]]]:
    """Per system {"BLEU"/"chrF2": {score, p_value[, mean, ci]}} from the sacreBLEU command line.

    Its JSON output fails on the bootstrap's float32 means, so the bootstrap table is read from
    the text output (4 decimals); approximate randomization comes as JSON (full precision).
    """
    cmd = [str(Path(sys.executable).parent / "sacrebleu"), str(ref), "-i", *map(str, systems),
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
    """Same scores, p-values (and bootstrap means/CIs) as `sacrebleu ref -i a b c --paired-bs/-ar`, seed fixed."""
    n = 200 if test == "bs" else 300
    files = {}
    for name in ("base", "close", "good"):
        with open(runs[name] / "reports/translations.tsv", encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        files[name] = tmp_path / f"{name}.txt"
        files[name].write_text("".join(r["hypothesis"] + "\n" for r in rows), encoding="utf-8")
    ref = tmp_path / "ref.txt"
    ref.write_text("".join(r + "\n" for r in runs["refs"]), encoding="utf-8")
    expected = sacrebleu_cli(ref, list(files.values()), test, n)
    out = tmp_path / "out"
    ok(run_compare(*(f"--system={k}={runs[k]}" for k in files), "--out-dir", str(out), "--seed", SEED,
                   "--bootstrap-samples", "200", "--ar-trials", "300", "--mlflow", "false"))
    report = report_of(out)["test_sets"]["test_2016_flickr en-de"]["systems"]
    tol = 1e-4 if test == "bs" else 1e-12  # the text output's 4 decimals
    for i, name in enumerate(files):
        for metric, key in {"bleu": "BLEU", "chrf": "chrF2"}.items():
            assert report[name][metric]["mean"] == pytest.approx(expected[i][key]["score"], abs=tol)
            if test == "bs":
                run = report[name]["runs"][0][metric]
                assert run["ci95"] == pytest.approx(expected[i][key]["ci"], abs=tol)
                assert run["bootstrap_mean"] == pytest.approx(expected[i][key]["mean"], abs=tol)
            if i:
                assert report[name]["vs_baseline"][metric][f"p_{test}_max"] == pytest.approx(
                    expected[i][key]["p_value"], abs=tol
                )
    assert report["good"]["vs_baseline"]["bleu"][f"p_{test}_max"] < 0.05 < report["close"]["vs_baseline"]["bleu"][
        f"p_{test}_max"
    ]


def test_a_system_compared_with_itself_is_not_significant(runs: dict, tmp_path: Path) -> None:
    ok(run_compare(f"--system=a={runs['base']}", f"--system=b={runs['base']}", "--out-dir", str(tmp_path), *FAST))
    vs = report_of(tmp_path)["test_sets"]["test_2016_flickr en-de"]["systems"]["b"]["vs_baseline"]
    for metric in ("bleu", "chrf"):
        assert vs[metric]["delta_mean"] == 0.0
        assert vs[metric]["p_ar_max"] == vs[metric]["p_bs_max"] == 1.0
        assert vs[metric]["pairs"][0]["identical"]
        assert not vs[metric]["significant"]


def test_a_clearly_better_system_is_significant_a_close_one_is_not(runs: dict, tmp_path: Path) -> None:
    ok(run_compare(f"--system=base={runs['base']}", f"--system=good={runs['good']}",
                   f"--system=close={runs['close']}", "--out-dir", str(tmp_path), *FAST))
    systems = report_of(tmp_path)["test_sets"]["test_2016_flickr en-de"]["systems"]
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
    systems = report["test_sets"]["test_2016_flickr en-de"]["systems"]
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
    plot = list(csv.DictReader(open(tmp_path / "scores.csv")))
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
    shutil.copy(runs["base"] / "reports/translations.tsv", repo / "reports/translations.tsv")
    subprocess.run(["dvc", "exp", "save", "-n", "basexp"], cwd=repo, env=env, check=True, timeout=120,
                   capture_output=True)
    shutil.copy(runs["good"] / "reports/translations.tsv", repo / "reports/translations.tsv")  # workspace: good
    out = tmp_path / "out"
    ok(run_compare("--system=b=dvc:basexp", f"--system=g={runs['good']}/reports", "--out-dir", str(out), *FAST,
                   cwd=repo))
    systems = report_of(out)["test_sets"]["test_2016_flickr en-de"]["systems"]
    ref = tmp_path / "ref"
    ok(run_compare(f"--system=b={runs['base']}", f"--system=g={runs['good']}", "--out-dir", str(ref), *FAST))
    expected = report_of(ref)["test_sets"]["test_2016_flickr en-de"]["systems"]
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
        for f in ("translations.tsv", "metrics.json"):
            client.log_artifact(run.info.run_id, str(runs[name] / "reports" / f), "eval")
    out = tmp_path / "out"
    env = {"MLFLOW_TRACKING_URI": uri}
    ok(run_compare(f"--system=b=mlflow:{ids['base']}", f"--system=g=mlflow:{ids['good']}", "--out-dir", str(out),
                   "--bootstrap-samples", "200", "--ar-trials", "300", cwd=tmp_path, env=env))
    systems = report_of(out)["test_sets"]["test_2016_flickr en-de"]["systems"]
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
        ("fewer sentences", "not the same test sentences"),
        ("no translations", "reports/translations.tsv not found"),
        ("bad tsv", "line 3: 2 fields, expected 4"),
        ("one system", "at least two systems"),
        ("bad option", "expected NAME=RUN"),
        ("unknown baseline", "--baseline nope"),
    ],
)
def test_bad_input_is_one_error_line_and_exit_2(runs: dict, tmp_path: Path, case: str, needle: str) -> None:
    srcs, refs = sentences()
    base = f"--system=a={runs['base']}"
    other = tmp_path / "other"
    if case == "missing folder":
        args = [base, f"--system=b={tmp_path / 'nope'}"]
    elif case == "other sentences":
        changed = list(refs)
        changed[7] = "ein anderer satz ."
        args = [base, f"--system=b={write_run(other, srcs, changed, refs)}"]
    elif case == "fewer sentences":
        args = [base, f"--system=b={write_run(other, srcs[:-1], refs[:-1], refs[:-1])}"]
    elif case == "no translations":
        other.mkdir()
        args = [base, f"--system=b={other}"]
    elif case == "bad tsv":
        write_run(other, srcs, refs, refs)
        lines = (other / "reports/translations.tsv").read_text().splitlines()
        lines[2] = "en-de\tonly two"
        (other / "reports/translations.tsv").write_text("\n".join(lines) + "\n")
        args = [base, f"--system=b={other}"]
    elif case == "one system":
        args = [base]
    elif case == "bad option":
        args = [base, f"--system={runs['good']}"]
    else:
        args = [base, f"--system=b={runs['good']}", "--baseline", "nope"]
    out = tmp_path / "out"
    result = run_compare(*args, "--out-dir", str(out), *FAST)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and needle in lines[-1], result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()  # nothing written


@pytest.mark.slow
def test_two_seeds_end_to_end(tiny_data: Path, tmp_path: Path) -> None:
    """The documented seed workflow on the tiny preset: train -m seed=1,2, evaluate -m, compare."""
    from conftest import run_script, tiny_paths

    shutil.copytree(tiny_data / "prepared", tmp_path / "prepared")
    sweep = tmp_path / "seeds"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db"}
    paths = [p for p in tiny_paths(tmp_path) if not p.startswith("hydra.")]
    # generous limits: they only stop a hung run (a loaded 2-core machine takes minutes)
    run_script("train", "-m", "seed=1,2", *paths, f"hydra.sweep.dir={sweep}", env=env, timeout=1800)
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
    (key,) = report["test_sets"]
    assert key.endswith(" en-de") and report["test_sets"][key]["sentences"] == 100
    seeds = report["test_sets"][key]["systems"]["seeds"]
    one = [r["bleu"]["score"] for r in seeds["runs"]]
    assert seeds["bleu"]["n"] == 2 and seeds["bleu"]["std"] is not None
    assert report["test_sets"][key]["systems"]["seed1"]["bleu"]["mean"] == one[0]
    for name in ("compare.md", "compare.json", "scores.csv"):
        assert (out / name).stat().st_size > 0
    weights = [torch_load(sweep / str(i) / "models/model.pt")["state_dict"] for i in (0, 1)]
    assert any(not a.equal(b) for a, b in zip(weights[0].values(), weights[1].values(), strict=True))


def torch_load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)

"""The registry's champion alias: moved atomically, only by a finite score, only between versions
validated on the same validation set (issue 34, items 2 and 3)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from s2s.tracking import registry
from s2s.tracking.registry import promote, validation_key

from conftest import ROOT

NAME = "s2s-test-promotion"
KEY = "a" * 64  # the default run's validation key
OTHER = "b" * 64  # another validation set (tiny preset, other direction)


@pytest.fixture
def store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    MlflowClient(tracking_uri=uri).create_registered_model(NAME)
    return uri


def new_version(uri: str, tmp_path: Path) -> str:
    source = tmp_path / "model"
    source.mkdir(exist_ok=True)
    return str(MlflowClient(tracking_uri=uri).create_model_version(NAME, str(source)).version)


def champion(uri: str) -> str:
    return str(MlflowClient(tracking_uri=uri).get_model_version_by_alias(NAME, "champion").version)


def test_the_best_score_takes_the_alias(store: str, tmp_path: Path) -> None:
    v1, v2, v3 = (new_version(store, tmp_path) for _ in range(3))
    assert promote(NAME, v1, "champion", 30.0, uri=store, key=KEY)
    assert promote(NAME, v2, "champion", 35.0, uri=store, key=KEY)
    assert not promote(NAME, v3, "champion", 31.0, uri=store, key=KEY)
    assert champion(store) == v2


@pytest.mark.parametrize("score", [math.nan, math.inf, -math.inf])
def test_a_non_finite_score_never_takes_the_alias(store: str, tmp_path: Path, score: float) -> None:
    v1, v2, v3 = (new_version(store, tmp_path) for _ in range(3))
    assert promote(NAME, v1, "champion", 30.0, uri=store, key=KEY)
    assert not promote(NAME, v2, "champion", score, uri=store, key=KEY)
    assert champion(store) == v1
    assert not promote(NAME, v3, "champion", 29.0, uri=store, key=KEY), "a worse score took it after the NaN"
    assert champion(store) == v1


def test_a_nan_as_first_score_leaves_no_champion(store: str, tmp_path: Path) -> None:
    v1, v2 = new_version(store, tmp_path), new_version(store, tmp_path)
    assert not promote(NAME, v1, "champion", math.nan, uri=store, key=KEY)
    assert promote(NAME, v2, "champion", 1.0, uri=store, key=KEY)
    assert champion(store) == v2


def waiting_on_lock(pid: int) -> bool:
    """``pid`` waits for a file lock (a ``->`` line of /proc/locks names the blocked process)."""
    return any(line.split()[1:2] == ["->"] and line.split()[5] == str(pid)
               for line in Path("/proc/locks").read_text().splitlines())


PROMOTE = """
import sys
from s2s.tracking.registry import promote
print(promote(sys.argv[1], sys.argv[2], "champion", float(sys.argv[3]), uri=sys.argv[4], key=sys.argv[5]))
"""


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_two_concurrent_promotions_leave_the_alias_on_the_better(
    store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promotion A (30.0) has read the champion and is about to move the alias when promotion B
    (35.0, another process) runs: B must not be overwritten by A (measured: 30.0 over 35.0)."""
    va, vb = new_version(store, tmp_path), new_version(store, tmp_path)
    original = MlflowClient.set_registered_model_alias
    other: list[subprocess.CompletedProcess[str]] = []

    def racing_set_alias(self, name, alias, version):  # noqa: ANN001, ANN202 - MlflowClient's own signature
        if not other:  # A's write: B runs in between
            env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
            proc = subprocess.Popen(
                [sys.executable, "-c", PROMOTE, NAME, vb, "35.0", store, KEY],
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            deadline = time.monotonic() + 300  # a guard only: B either ends or blocks on A's lock
            while proc.poll() is None and not waiting_on_lock(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            other.append(proc)
        return original(self, name, alias, version)

    monkeypatch.setattr(MlflowClient, "set_registered_model_alias", racing_set_alias)
    promote(NAME, va, "champion", 30.0, uri=store, key=KEY)
    out, err = other[0].communicate(timeout=300)
    assert other[0].returncode == 0, err[-2000:]
    assert champion(store) == vb, "the alias is left on the worse version"


def test_another_validation_set_cannot_take_the_alias(store: str, tmp_path: Path) -> None:
    """A tiny-preset run (100 sentences) or the other direction scores higher on its own set."""
    default, tiny = new_version(store, tmp_path), new_version(store, tmp_path)
    assert promote(NAME, default, "champion", 30.0, uri=store, key=KEY)
    assert not promote(NAME, tiny, "champion", 50.0, uri=store, key=OTHER)
    assert champion(store) == default
    assert not promote(NAME, new_version(store, tmp_path), "champion", 50.0, uri=store, key=None)
    assert champion(store) == default


def write_valid(path: Path, rows: list[tuple[str, str, str, str]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["src_lang\ttgt_lang\tsource\treference", *("\t".join(r) for r in rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_validation_key_names_languages_direction_sentences_and_scoring(tmp_path: Path) -> None:
    rows = [("en", "de", "A dog.", "Ein Hund."), ("en", "de", "A cat.", "Eine Katze.")]
    scoring = {"limit_val_batches": 1.0, "val_max_len_a": 1.5, "val_max_len_b": 10}
    base = validation_key(write_valid(tmp_path / "a/valid.tsv", rows), scoring)
    assert base == validation_key(write_valid(tmp_path / "same/valid.tsv", rows), scoring)
    fewer = write_valid(tmp_path / "tiny/valid.tsv", rows[:1])  # preset=tiny, data.max_eval_pairs=100
    french = write_valid(tmp_path / "fr/valid.tsv", [("en", "fr", s, r) for _, _, s, r in rows])
    reverse = write_valid(tmp_path / "rev/valid.tsv", [("de", "en", r, s) for _, _, s, r in rows])
    for other in (fewer, french, reverse):
        assert validation_key(other, scoring) != base, other
    assert validation_key(tmp_path / "a/valid.tsv", {**scoring, "limit_val_batches": 0.1}) != base
    assert validation_key(tmp_path / "a/valid.tsv", {**scoring, "val_max_len_b": 50}) != base


def test_the_registry_lock_lives_beside_a_sqlite_store(tmp_path: Path) -> None:
    assert registry.registry_lock_path(f"sqlite:///{tmp_path}/mlflow.db") == tmp_path / "mlflow.db.registry.lock"
    assert registry.registry_lock_path("http://127.0.0.1:5000") is None


def test_a_bleu_of_zero_is_not_promoted_and_scores_are_tagged_as_printed(store: str, tmp_path: Path) -> None:
    """A model whose translations are all empty (preset=tiny optim.lr=0.001) scores BLEU 0.00."""
    empty, good = new_version(store, tmp_path), new_version(store, tmp_path)
    assert not promote(NAME, empty, "champion", 0.0, uri=store, key=KEY)
    assert promote(NAME, good, "champion", 3.0999999046325684, uri=store, key=KEY)
    client = MlflowClient(tracking_uri=store)
    assert client.get_model_version(NAME, good).tags["val_bleu"] == "3.10"
    assert champion(store) == good

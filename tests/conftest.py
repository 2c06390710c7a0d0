"""Shared fixtures: the project root, composed configs and tiny models.

Layout (``tests/``, the rootdir's ``testpaths``):

- ``unit/<subpackage>/test_<module>.py``: the tests of one module of ``src/s2s`` (``unit/inference/
  test_search.py`` tests ``s2s/inference/search.py``); a costly or pinned part of them may sit
  beside as ``test_<module>_<kind>.py`` (``test_search_recorded.py``). In process, seconds each.
- ``unit/test_import_direction.py``: a rule about the whole package (``s2s.common`` imports nothing
  above it).
- ``unit/docs/``: the pages (README.md, docs/): links resolve, named files and ``make`` targets exist,
  quoted figures equal the committed result files. Instant, no torch work.
- ``e2e/``: tests that run the stage scripts, the pipeline (``dvc repro``, ``dvc exp``) or another
  command as a subprocess; named after what they check. Most need the corpus mirror (``S2S_MIRROR``).
- ``helpers/``: modules the tests share (``from helpers.tiny_lightning import make_task``) and the
  scripts tests run by path (``helpers.paths.HELPERS / "fail_at.py"``); no tests.
- ``data/``: pinned outputs (``TEST_DATA``).

Imports: this file's folder, ``tests/``, is on ``sys.path`` (pytest's default ``prepend`` import mode
puts the first folder above a test file without an ``__init__.py`` there), so tests import
``conftest`` and ``helpers.*`` by those names. ``unit/``, ``e2e/`` and ``helpers/`` and their
subfolders are packages (``__init__.py``), so equal file names in two folders do not collide
(``unit.training.test_resume``, ``e2e.test_train_resume``). Paths come from ``helpers/paths.py``,
re-exported here: ``from conftest import ROOT, TEST_DATA`` works at any depth.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

# `make test` runs two pytest-xdist workers. Each worker, and every script it starts, then uses one
# thread: two workers share two cores without oversubscription (OpenMP threads spinning against
# each other slow a busy machine down several-fold). Set before torch is imported.
# (Measured: a 2-thread training beside another busy process ran 30x slower than alone.)
THREADS = 1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1)
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from helpers.paths import CONF, HELPERS, ROOT, TEST_DATA  # noqa: E402, F401 - re-exported for the tests

# each test ends with the environment and torch switches it began with (helpers/process_state.py)
pytest_plugins = ["helpers.process_state"]

MODEL_CONFIGS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))


def compose_config(overrides: list[str] | None = None):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=overrides or [])


def small_model_config(name: str, emb: int = 16, enc: int = 16, dec: int = 32, dropout: float = 0.0) -> dict:
    """``conf/model/<name>.yaml`` shrunk: embedding and hidden sizes as given, every dropout set to
    ``dropout``; a Transformer also gets 2 layers, 2 heads and a feed-forward twice its width."""
    cfg = OmegaConf.to_container(compose_config([f"model={name}"]).model, resolve=True)
    cfg["emb_size"] = emb
    cfg["encoder"]["hidden_size"] = enc
    cfg["decoder"]["hidden_size"] = dec
    for part in ("encoder", "decoder"):
        if "ff_size" in cfg[part]:
            cfg[part].update(num_layers=2, num_heads=2, ff_size=2 * cfg[part]["hidden_size"])
        for key in ("dropout", "emb_dropout", "hidden_dropout", "attention_dropout"):
            if key in cfg[part]:
                cfg[part][key] = dropout
    return cfg


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``requires_gpu`` skip on machines without CUDA (they run where one is lent)."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="requires_gpu: no CUDA device on this machine")
    for item in items:
        if "requires_gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _rank_zero():
    """Each test ends on the rank it started on (0). Lightning keeps the process's rank in a global,
    ``rank_zero_only.rank``, that a Trainer of a DDP strategy sets: a test that builds one as a SLURM
    task of rank 1 would otherwise turn every later logger in that worker into a no-op
    (``rank_zero_experiment`` hands out a dummy experiment)."""
    from lightning_utilities.core.rank_zero import rank_zero_only  # the object Lightning and Fabric re-export

    saved = getattr(rank_zero_only, "rank", 0)
    yield
    rank_zero_only.rank = saved


def mirror_dir() -> Path | None:
    """The real corpus mirror: $S2S_MIRROR, or skip (offline user) / fail (CI) when absent."""
    value = os.environ.get("S2S_MIRROR")
    if value and Path(value).is_dir():
        return Path(value).resolve()
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the corpus mirror S2S_MIRROR={value!r} is missing")
    pytest.skip("set S2S_MIRROR to a folder holding the Multi30k files (e.g. ../shared/data/multi30k)")
    return None


def mirror_pairs(n: int) -> list[tuple[str, str]]:
    """The first ``n`` English-German training pairs of the mirror: material for a user's own corpus."""
    mirror = mirror_dir()
    with (
        gzip.open(mirror / "train.en.gz", "rt", encoding="utf-8") as en,
        gzip.open(mirror / "train.de.gz", "rt", encoding="utf-8") as de,
    ):
        return [(e.rstrip(), d.rstrip()) for e, d, _ in zip(en, de, range(n), strict=False)]


def run_script(
    script: str, *overrides: str, env: dict[str, str] | None = None, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``python src/<script>.py overrides...`` from the project root; fail with its output."""
    import sys

    full_env = {**os.environ, **(env or {})}
    full_env.pop("HYDRA_FULL_ERROR", None)
    result = subprocess.run(
        [sys.executable, f"src/{script}.py", *overrides],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        pytest.fail(f"{script} {' '.join(overrides)} exited {result.returncode}:\n{result.stderr[-4000:]}")
    return result


def tiny_paths(base: Path) -> list[str]:
    """Overrides that keep every output of a tiny run under ``base``."""
    return [
        "preset=tiny",
        f"paths.raw_dir={base}/raw",
        f"paths.prepared_dir={base}/prepared",
        f"paths.checkpoint_dir={base}/checkpoints",
        f"paths.model_dir={base}/models",
        f"paths.reports_dir={base}/reports",
        f"hydra.run.dir={base}/hydra",
    ]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real corpus (mirror), downloaded and preprocessed with the tiny preset, once per session."""
    mirror = mirror_dir()
    base = tmp_path_factory.mktemp("tiny")
    run_script("download", *tiny_paths(base), f"data.mirror={mirror}")
    run_script("preprocess", *tiny_paths(base))
    return base


def copy_tiny(tiny_data: Path, dest: Path) -> list[str]:
    """A private copy of the tiny prepared data for one test; returns its path overrides."""
    shutil.copytree(tiny_data / "prepared", dest / "prepared")
    return tiny_paths(dest)


# Tests about plumbing, not quality, train this long: every per-epoch path (validation, checkpoint,
# schedule, curves) runs twice, at a tenth of the tiny preset's 20 epochs.
SHORT_TRAINING = "trainer.max_epochs=2"


def copy_project(dest: Path, *, skip: tuple[str, ...] = ("reports/", "benchmarks/")) -> Path:
    """The project as a fresh clone of the working tree would hold it (tracked and new files, not
    ignored ones), at ``dest``; paths starting with ``skip`` are left out."""
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    for name in files:
        if name.startswith(skip) or not (ROOT / name).is_file():
            continue
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, dest / name)
    return dest


def compose_params(project: Path, overrides: list[str]) -> None:
    """Write ``project/params.yaml`` as `dvc exp run -S ...` would: ``conf/`` composed with overrides."""
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(str(project / "params.yaml"), str(project / "conf"), None, "config", str(project), overrides)


def not_a_param(value: str) -> bool:
    """A checksum, URL or path: lineage, not a hyper-parameter (an MLflow tag or artifact, never a param)."""
    return bool(re.fullmatch(r"[0-9a-f]{32,64}", value)) or "://" in value or value.startswith("/")

"""Peak resident memory of the preprocess stage as the corpus grows (it streams: it should stay flat).

Runs the real stage script (``src/preprocess.py``) in a child process on
  - the Tatoeba recipe (``data=tatoeba_en_de``; its download is run first, from the mirror), and
  - a synthetic corpus of ``--pairs`` pairs (default 2,000,000) that this script writes as one
    gzipped TSV file, described by a data config of its own (a local source, a seeded split),
and reports each child's peak RSS (``ru_maxrss``) and wall time.  Usage:
    S2S_MIRROR=../shared/data/multi30k python benchmarks/bench_preprocess_memory.py [--pairs N] [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def synthetic_corpus(path: Path, pairs: int, seed: int = 1) -> None:
    """English-like and German-like sentences of 4-20 words from two 20,000-word vocabularies."""
    rng = random.Random(seed)
    letters = "abcdefghijklmnopqrstuvwxyz"

    def vocab() -> list[str]:
        return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(20000)]

    en, de = vocab(), vocab()
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as fh:
        for _ in range(pairs):
            n = rng.randint(4, 20)
            fh.write(" ".join(rng.choices(en, k=n)) + "\t" + " ".join(rng.choices(de, k=n + rng.randint(-2, 3))) + "\n")


def run_child(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Run one stage in a fresh child; its peak RSS is the growth of RUSAGE_CHILDREN's maximum."""
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    return {
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    py = [sys.executable]
    figures = {}
    with tempfile.TemporaryDirectory(prefix="bench_preprocess_") as tmp_name:
        tmp = Path(tmp_name)

        def paths(name: str) -> list[str]:
            return [
                f"paths.raw_dir={tmp / name / 'raw'}",
                f"paths.prepared_dir={tmp / name / 'prepared'}",
                f"paths.reports_dir={tmp / name / 'reports'}",
                f"hydra.run.dir={tmp / name / 'hydra'}",
            ]

        # each measured child is the first big one: ru_maxrss of children is a running maximum, so
        # the smaller corpus goes first and every download (small) before both
        subprocess.run([*py, "src/download.py", "data=tatoeba_en_de", *paths("tatoeba")], cwd=ROOT, env=env, check=True)
        corpus = tmp / "synthetic.tsv.gz"
        synthetic_corpus(corpus, args.pairs)
        conf = tmp / "conf" / "data"
        conf.mkdir(parents=True)
        (conf / "synthetic.yaml").write_text(
            f"name: synthetic\nsrc_lang: en\ntgt_lang: de\nsources:\n  syn: {{path: {corpus}}}\n"
            "split: {tsv: syn/synthetic.tsv.gz, columns: {en: 0, de: 1}, seed: 1, valid: 2000, test: 2000}\n"
            "max_train_pairs: null\nmax_eval_pairs: null\n"
        )
        synthetic = [f"hydra.searchpath=[file://{tmp / 'conf'}]", "data=synthetic", *paths("synthetic")]
        subprocess.run([*py, "src/download.py", *synthetic], cwd=ROOT, env=env, check=True)
        figures["tatoeba_en_de"] = {
            "pairs": 169813,
            **run_child([*py, "src/preprocess.py", "data=tatoeba_en_de", *paths("tatoeba")], env),
        }
        figures["synthetic"] = {"pairs": args.pairs, **run_child([*py, "src/preprocess.py", *synthetic], env)}
    figures["note"] = "peak RSS of the preprocess child (ru_maxrss); default preprocess config (vocab 8000)"
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()

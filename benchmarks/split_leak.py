"""How a corpus without an official split is split, and whether any held-out sentence leaks.

Splits the recipe's corpus exactly as the preprocess stage does (``s2s.data.preprocess.split``) and counts the
validation and test pairs whose source or target sentence (stripped, verbatim) is also in training.

    python benchmarks/split_leak.py --data conf/data/tatoeba_en_de.yaml \
        --raw-source tatoeba=../shared/data/tatoeba-anki-deu-eng

``--raw-source NAME=FOLDER`` serves a source's files from a folder (a mirror) instead of data/raw.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import yaml

from s2s.data.download.sources import CorpusConfig, iter_part
from s2s.data.preprocess.split import ROLE_NAMES, TRAIN, assign_split, split_sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="conf/data/tatoeba_en_de.yaml")
    ap.add_argument("--raw", default="data/raw")
    ap.add_argument("--raw-source", action="append", default=[], metavar="NAME=FOLDER")
    args = ap.parse_args()
    ds = CorpusConfig.from_config(yaml.safe_load(Path(args.data).read_text()))
    assert ds.split is not None, f"{args.data} has an official split"
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(args.raw)
        if args.raw_source:
            for item in args.raw_source:
                name, folder = item.split("=", 1)
                (Path(tmp) / name).symlink_to(Path(folder).resolve())
            raw = Path(tmp)
        rows = [(s.strip(), refs[0].strip()) for s, refs in iter_part(raw, ds, ds.split.part)]
    split = assign_split(rows, ds.split.valid, ds.split.test, ds.split.seed)
    train_side = [{p[side] for p, r in zip(rows, split.roles, strict=True) if r == TRAIN} for side in (0, 1)]
    leaks = {}
    for role, name in ROLE_NAMES.items():
        if role == TRAIN:
            continue
        held = [p for p, r in zip(rows, split.roles, strict=True) if r == role]
        leaks[name] = {
            f"{lang}_sentence_in_train": sum(p[side] in train_side[side] for p in held)
            for side, lang in enumerate(ds.langs)
        }
    print(json.dumps({"sizes": split_sizes(split.roles), **split.stats(), "leaks": leaks}, indent=1))


if __name__ == "__main__":
    main()

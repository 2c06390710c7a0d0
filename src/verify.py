"""Check that portable numerics give this machine every recorded CPU's bytes: `make verify`.

    python src/verify.py              # rerun the tiny pipeline per candidate numerics; per recorded CPU:
                                      # matched / differs: FILE (and the first differing op) / not yet recorded
    python src/verify.py --write      # record this CPU's side: each candidate's reference and the op battery
    python src/verify.py --ci         # CI: a difference fails only on a reference's own CPU model
    python src/verify.py --candidate portable-avx2    # one candidate only (with --write: record it alone)
    python src/verify.py --table      # the "identical where" table, from the committed records only
    python src/verify.py --reference FILE             # one reference file, with its own overrides

Exit codes: 0 matched (or written), 1 a file differs, 2 a user error (one line `error: ...`).
"""

# isort: off
import s2s.common.interrupts  # noqa: F401 - first: Ctrl-C while importing the rest ends in one line
# isort: on
import argparse
import logging
from pathlib import Path

from s2s.common.cli import user_errors
from s2s.common.verification import CANDIDATES, identical_where, verify


@user_errors
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, help="check against this one reference file (JSON)")
    parser.add_argument("--candidate", action="append", choices=list(CANDIDATES),
                        help="a candidate numerics to check (default: every one)")
    parser.add_argument("--write", action="store_true", help="record this CPU's references and op battery")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep its outputs (default: a temp folder)")
    parser.add_argument("--ci", action="store_true",
                        help="fail only where this CPU is the reference's model; elsewhere print the finding")
    parser.add_argument("--table", action="store_true", help="print the identical-where table from the records")
    args = parser.parse_args()
    logging.basicConfig(handlers=[logging.NullHandler()])  # errors reach the user once, as `error: ...`
    if args.table:
        print(identical_where())
        return 0
    return verify(args.reference, write=args.write, keep=args.keep, other_cpu_fails=not args.ci,
                  candidates=args.candidate)


if __name__ == "__main__":
    raise SystemExit(main())

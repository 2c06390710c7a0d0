"""Check that portable numerics give this machine the reference's bytes: `make verify`.

    python src/verify.py              # rerun the tiny pipeline; print matched / differs: FILE
    python src/verify.py --write      # record this machine's checksums as the reference
    python src/verify.py --ci         # CI: a difference fails only on the reference's own CPU model

Exit codes: 0 matched (or written), 1 a file differs, 2 a user error (one line `error: ...`).
"""

import argparse
import logging
from pathlib import Path

from s2s.common.cli import user_errors
from s2s.common.verification import REFERENCE, verify


@user_errors
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=REFERENCE, help="reference checksums (JSON)")
    parser.add_argument("--write", action="store_true", help="write this machine's checksums as the reference")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep its outputs (default: a temp folder)")
    parser.add_argument("--ci", action="store_true",
                        help="fail only where this CPU is the reference's model; elsewhere print the finding")
    args = parser.parse_args()
    logging.basicConfig(handlers=[logging.NullHandler()])  # errors reach the user once, as `error: ...`
    return verify(args.reference, write=args.write, keep=args.keep, other_cpu_fails=not args.ci)


if __name__ == "__main__":
    raise SystemExit(main())

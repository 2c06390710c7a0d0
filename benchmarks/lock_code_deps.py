"""Record in dvc.lock the new hashes of the stages' code dependencies (``src/...``) after a change
that alters no output: an error message, a file name no output holds, a comment.

What ``dvc commit`` does for such a change, without the outputs it would hash again: main's dvc.lock
and reports/ are a full-budget run's (docs/results/RUNS.md), whose outputs are on no later machine.
DVC computes and writes the hashes (``Stage.save_deps``, ``Stage.dump``); the outputs' entries stay
as they are. The proof that the change alters no output is ``make verify`` matching; say which
change in the RUNS.md log.

    python benchmarks/lock_code_deps.py      # prints each stage it updated and the deps that changed
"""

from __future__ import annotations

from dvc.repo import Repo


def main() -> None:
    repo = Repo(".")
    with repo.lock:
        for stage in repo.index.stages:
            code = [dep for dep in stage.deps if dep.def_path.startswith("src/")]
            changed = [dep.def_path for dep in code if dep.changed()]
            if not changed:
                continue
            for dep in code:
                dep.save()
            stage.dump(update_pipeline=False)
            print(stage.name, ", ".join(changed))


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# One headline run (issue 33, docs/results/RUNS.md): the default pipeline of COMMIT in its own git
# worktree RUNS_DIR/NAME, params.yaml composed with the overrides (exactly what `dvc exp run -S ...`
# does), then `dvc repro` at the lowest priority with one thread (two runs side by side on two
# cores; portable numerics give the same bits at any thread count).
#
#   bash benchmarks/headline_run.sh NAME COMMIT [HYDRA_OVERRIDE ...]
#   e.g. bash benchmarks/headline_run.sh bigru_attn-s2 0123abc model=bigru_attn seed=2
#
# A recipe search stops before the test sets (tune on validation only): STAGES=train runs
# `dvc repro train` (the stages up to training), and the test sets are decoded only for the chosen recipe.
#
# Rerunning the same command after a cut-off resumes it: DVC reruns the unfinished stage and the
# train stage continues from its last checkpoint (train.resume=auto). Appends to RUNS_DIR/NAME/run.log.
set -euo pipefail
NAME=${1:?usage: headline_run.sh NAME COMMIT [HYDRA_OVERRIDE ...]}
COMMIT=${2:?usage: headline_run.sh NAME COMMIT [HYDRA_OVERRIDE ...]}
shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS_DIR=${RUNS_DIR:-$(dirname "$ROOT")/runs}
RUN=$RUNS_DIR/$NAME
[ -d "$RUN" ] || git -C "$ROOT" worktree add --detach "$RUN" "$COMMIT" >/dev/null
cd "$RUN"
if [ "$(git rev-parse HEAD)" != "$(git -C "$ROOT" rev-parse "$COMMIT^{commit}")" ]; then
    echo "error: $RUN holds commit $(git rev-parse --short HEAD), not $COMMIT: a run resumes on its own commit" >&2
    exit 2
fi
export PATH="$ROOT/.venv/bin:$PATH" PYTHONPATH="$RUN/src" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export S2S_MIRROR="${S2S_MIRROR:-$(dirname "$ROOT")/shared/data/multi30k}"
if [ -f "$RUN/.running" ] && kill -0 "$(cat "$RUN/.running")" 2>/dev/null; then
    echo "error: $NAME is running (pid $(cat "$RUN/.running")); wait for it, or stop it to resume later" >&2
    exit 2
fi
echo $$ > "$RUN/.running"
# `nice` alone does not lower a process below other sessions' work where the kernel groups tasks by
# session (sched_autogroup_enabled=1, and a run started with setsid is its own session): lower the group too
echo 19 > /proc/self/autogroup 2>/dev/null || true
trap 'rm -f "$RUN/.running"' EXIT
python -m s2s.common.params_file "$@"
{
    echo "== $(date -u +%FT%TZ) start: dvc repro ${STAGES:-} (commit $(git rev-parse --short HEAD); overrides: ${*:-none};" \
         "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), OMP_NUM_THREADS=$OMP_NUM_THREADS)"
    start=$(date +%s)
    rc=0
    # shellcheck disable=SC2086  # STAGES: zero or more stage names
    nice -n 19 dvc repro ${STAGES:-} || rc=$?
    echo "== $(date -u +%FT%TZ) end: rc $rc, wall $(( $(date +%s) - start )) s"
} >> "$RUN/run.log" 2>&1

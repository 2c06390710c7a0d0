#!/usr/bin/env bash
# The headline runs of issue 33 in two lanes, one per core, each lane one run after another
# (docs/results/RUNS.md). A finished run (its run.log ends with rc 0) is skipped, a running one is
# waited for, an unfinished one is resumed by benchmarks/headline_run.sh. Start it again after a
# cut-off (a new session): it carries on where the lanes stopped.
#
#   COMMIT=236340e bash benchmarks/headline_lanes.sh A|B
#
# After the headline's runs each lane goes on with the Transformer's (issue 37 item 4), on a commit
# that has the model: an entry NAME@COMMIT:OVERRIDES runs on its own COMMIT (TRANSFORMER_COMMIT).
# This file may change while lanes run: write it whole and rename it into place (bash reads a
# running script as it goes).
set -uo pipefail
LANE=${1:?usage: headline_lanes.sh A|B}
COMMIT=${COMMIT:?set COMMIT to the commit of docs/results/RUNS.md}
TRANSFORMER_COMMIT=${TRANSFORMER_COMMIT:-971f993}   # model=transformer's second recipe (the first, on 7dab138: transformer_r1-s*)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
RUNS_DIR=${RUNS_DIR:-$(dirname "$ROOT")/runs}
case $LANE in
  A) RUNS=("bilstm_attn-s1:" "bigru_attn-s1:model=bigru_attn" "bilstm_attn-s3:seed=3" "bigru_attn-s3:model=bigru_attn seed=3"
           "transformer-s1@$TRANSFORMER_COMMIT:model=transformer" "transformer-s3@$TRANSFORMER_COMMIT:model=transformer seed=3") ;;
  B) RUNS=("bilstm_attn-s2:seed=2" "bigru_attn-s2:model=bigru_attn seed=2" "bilstm_attn_fused-s1:model=bilstm_attn_fused"
           "transformer-s2@$TRANSFORMER_COMMIT:model=transformer seed=2") ;;
  *) echo "error: lane $LANE: expected A or B" >&2; exit 2 ;;
esac
for entry in "${RUNS[@]}"; do
    name=${entry%%:*}; overrides=${entry#*:}
    commit=$COMMIT
    case $name in *@*) commit=${name#*@}; name=${name%%@*} ;; esac
    run=$RUNS_DIR/$name
    while [ -f "$run/.running" ] && kill -0 "$(cat "$run/.running")" 2>/dev/null; do sleep 60; done
    if tail -n 1 "$run/run.log" 2>/dev/null | grep -q ' end: rc 0,'; then continue; fi
    # shellcheck disable=SC2086  # overrides is a list of Hydra overrides
    bash "$ROOT/benchmarks/headline_run.sh" "$name" "$commit" $overrides || echo "lane $LANE: $name failed" >&2
done

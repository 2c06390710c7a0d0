#!/usr/bin/env bash
# The seeds-and-significance table of docs/benchmarks.md: each model trained with each seed on the prepared
# data (train + evaluate, beam 5), then one `src/compare.py` report over all of them.
#
#   bash benchmarks/seeds_table.sh OUT_DIR [HYDRA_OVERRIDE ...]
#   e.g. bash benchmarks/seeds_table.sh /tmp/seeds trainer.max_epochs=1     (the table of docs/benchmarks.md)
#
# MODELS (default "bilstm_attn lstm_noattn bigru_attn"; the first is the baseline), SEEDS
# (default "1 2 3") and JOBS (runs side by side, default 2, one thread each: two 2-thread torch
# processes on 2 cores slow each other down many times) come from the environment.
# Needs data/prepared (`dvc repro preprocess`; PREPARED=DIR for another). Writes OUT_DIR/runs/<model>-<seed>/ and
# OUT_DIR/compare/compare.{md,json}; runs are not tracked in MLflow (logger=none).
set -euo pipefail
OUT=$(realpath -m "${1:?usage: seeds_table.sh OUT_DIR [HYDRA_OVERRIDE ...]}"); shift
MODELS=${MODELS:-"bilstm_attn lstm_noattn bigru_attn"}
SEEDS=${SEEDS:-"1 2 3"}
JOBS=${JOBS:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREPARED=${PREPARED:-$ROOT/data/prepared}
[ -f "$PREPARED/train.npz" ] || { echo "error: $PREPARED/train.npz missing: run dvc repro preprocess" >&2; exit 2; }
export OMP_NUM_THREADS=1 OVERRIDES="$*" OUT PREPARED ROOT

one_run() {  # $1 = model, $2 = seed
    local run=$OUT/runs/$1-$2
    local paths="paths.prepared_dir=$PREPARED paths.checkpoint_dir=$run/checkpoints paths.model_dir=$run/models paths.reports_dir=$run/reports"
    rm -rf "$run" && mkdir -p "$run"
    # shellcheck disable=SC2086  # OVERRIDES and paths are lists of Hydra overrides
    python "$ROOT/src/train.py" model="$1" seed="$2" logger=none $paths $OVERRIDES \
        hydra.run.dir="$run/hydra-train" > "$run/train.out" 2>&1
    # shellcheck disable=SC2086
    python "$ROOT/src/evaluate.py" model="$1" seed="$2" logger=none $paths $OVERRIDES \
        'evaluate.robustness_levels=[0.0]' evaluate.heatmaps=0 \
        hydra.run.dir="$run/hydra-eval" > "$run/eval.out" 2>&1
    echo "$1 seed $2: test BLEU $(python -c "import json,sys; print(json.load(open(sys.argv[1]))['bleu'])" "$run/reports/metrics.json")"
}
export -f one_run

for s in $SEEDS; do for m in $MODELS; do echo "$m $s"; done; done \
    | xargs -P "$JOBS" -L 1 bash -c 'one_run "$0" "$1"'

systems=()
for m in $MODELS; do
    runs=$(for s in $SEEDS; do printf '%s,' "$OUT/runs/$m-$s"; done)
    systems+=(--system "$m=${runs%,}")
done
python "$ROOT/src/compare.py" "${systems[@]}" --out-dir "$OUT/compare" --jobs "$JOBS"
echo "report: $OUT/compare/compare.md"

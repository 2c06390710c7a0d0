#!/usr/bin/env bash
# The headline table from the committed run files only (issue 33): src/compare.py over
# docs/results/<model>-s<seed>/ (mean ± std over seeds on every test set, BLEU and chrF cased,
# lc-tok BLEU, paired significance of each model against the default) into docs/results/headline/,
# with headline.md, the compact table the pages quote, and validation.md, each run's validation BLEU
# after every epoch.
# No training: anyone can re-create the table from a clone. `make headline`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# RESULTS and OUT_DIR as given are relative to the caller's folder
case ${RESULTS:-/} in /*) ;; *) RESULTS=$PWD/$RESULTS ;; esac
case ${OUT_DIR:-/} in /*) ;; *) OUT_DIR=$PWD/$OUT_DIR ;; esac
cd "$ROOT"   # run folders named relative to the checkout: the committed report holds no machine's path
RESULTS=${RESULTS:-docs/results}
MODELS=${MODELS:-"bilstm_attn bigru_attn bilstm_attn_fused"}   # the first is the baseline
systems=() folders=()
for m in $MODELS; do
    found=()
    for d in "$RESULTS/$m"-s[0-9]*; do [ -d "$d/reports/eval" ] && found+=("$d"); done
    [ ${#found[@]} -ge 1 ] || continue
    systems+=(--system "$m=$(IFS=,; echo "${found[*]}")")
    folders+=("${found[@]}")
done
[ ${#systems[@]} -ge 1 ] || { echo "error: no run collected under $RESULTS (benchmarks/collect_run.sh)" >&2; exit 2; }
OUT=${OUT_DIR:-$RESULTS/headline}
python "$ROOT/src/compare.py" "${systems[@]}" --out-dir "$OUT" --mlflow false
# compare's plot files stay out of docs/: a dvc.yaml there would join the project's DVC index
# (`dvc plots show` at the root would draw it); compare.json holds every run's scores
rm -f "$OUT/dvc.yaml" "$OUT/scores.csv"
# the compact table the README and docs/benchmarks.md paste (the docs tests read it back)
python "$ROOT/benchmarks/headline_markdown.py" "$OUT/compare.json" > "$OUT/headline.md"
# validation BLEU after every epoch of the same runs (where the budget left each one)
python "$ROOT/benchmarks/validation_table.py" "${folders[@]}" > "$OUT/validation.md"

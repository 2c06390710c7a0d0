#!/usr/bin/env bash
# The validation BLEU of a finished recipe-search run's two candidate weights (issue 37 item 4: a
# recipe is chosen on the validation set only): the best epoch's checkpoint and the exported
# models/model.pt (with train.average_last=N, the average of the last N epochs' checkpoints).
# Greedy, the validation set, the run's own params.yaml (`train.validate_only=true`), so the figures
# equal the per-epoch curve's where the weights are the same.
#
#   bash benchmarks/search_validate.sh RUN    # RUNS_DIR/RUN (default ../runs/RUN)
#
# Writes RUNS_DIR/RUN/reports/validate-best/validation.json and .../validate-export/validation.json
# (BLEU, loss and hypotheses); benchmarks/collect_run.sh copies them with the run.
set -euo pipefail
RUN=${1:?usage: search_validate.sh RUN}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${RUNS_DIR:-$(dirname "$ROOT")/runs}/$RUN
grep -q '^== .* end: rc 0,' "$SRC/run.log" 2>/dev/null \
    || { echo "error: $SRC/run.log shows no finished run (rc 0)" >&2; exit 2; }
cd "$SRC"
export PATH="$ROOT/.venv/bin:$PATH" PYTHONPATH="$SRC/src"
for pair in best:checkpoints/best.ckpt export:models/model.pt; do
    name=${pair%%:*} weights=${pair#*:}
    python src/train.py --config-dir . --config-name params train.validate_only=true \
        "train.init_from=$weights" "paths.reports_dir=reports/validate-$name" > "reports/validate-$name.log" 2>&1 \
        || { echo "error: validating $weights failed: $SRC/reports/validate-$name.log" >&2; exit 1; }
    python -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], 'BLEU', r['val_bleu'])" \
        "reports/validate-$name/validation.json" "$RUN" "$weights"
done

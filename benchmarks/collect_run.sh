#!/usr/bin/env bash
# Copy what a finished headline run's table is made from into docs/results/<run>/ (issue 33):
# reports/metrics.json, reports/eval/ (report with provenance, translations of every test set,
# robustness), the training and validation curves, params.yaml, dvc.lock and run.log (command, wall time).
# A recipe-search run (STAGES=train: no test set decoded) has no metrics.json or eval/; its
# reports/validate-*/ (benchmarks/search_validate.sh: the validation BLEU of its best and exported
# weights; benchmarks/decode_validate.sh: of other decode settings) are copied too.
#
#   bash benchmarks/collect_run.sh RUN     # RUNS_DIR/RUN (default ../runs/RUN) must have finished
set -euo pipefail
RUN=${1:?usage: collect_run.sh RUN}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${RUNS_DIR:-$(dirname "$ROOT")/runs}/$RUN
DEST=$ROOT/docs/results/$RUN
grep -q '^== .* end: rc 0,' "$SRC/run.log" 2>/dev/null \
    || { echo "error: $SRC/run.log shows no finished run (rc 0): resume it with benchmarks/headline_run.sh" >&2; exit 2; }
rm -rf "$DEST" && mkdir -p "$DEST/reports"
# reports/eval counts only where the run's evaluate stage decoded the run's own model (dvc.lock: the
# evaluate stage's models dep is the train stage's models out); a search run's worktree still holds
# the reports/ its commit carries (main's: the default's seed 1)
PY=$ROOT/.venv/bin/python; [ -x "$PY" ] || PY=python   # the project's environment (MLflow, PyYAML)
evaluated=$("$PY" - "$SRC/dvc.lock" <<'PYEOF'
import sys, yaml
stages = yaml.safe_load(open(sys.argv[1]))["stages"]
def md5(entries):
    return next((e.get("md5") for e in entries or [] if e["path"] == "models"), None)
trained, decoded = md5(stages.get("train", {}).get("outs")), md5(stages.get("evaluate", {}).get("deps"))
print("yes" if trained is not None and trained == decoded else "no")
PYEOF
)
if [ "$evaluated" = yes ]; then
    cp "$SRC/reports/metrics.json" "$DEST/reports/"
    cp -r "$SRC/reports/eval" "$DEST/reports/eval"
fi
for validated in "$SRC"/reports/validate-*/; do
    [ -d "$validated" ] && cp -r "$validated" "$DEST/reports/"
done
# the curves from the run's MLflow history: DVCLive's files of a resumed run on 236340e hold only the
# epochs after its last resume (benchmarks/mlflow_curves.py); its values agree where both exist
"$PY" "$ROOT/benchmarks/mlflow_curves.py" "$SRC/reports/train_run.json" "$DEST/reports/dvclive" >/dev/null
cp "$SRC/params.yaml" "$SRC/dvc.lock" "$SRC/run.log" "$DEST/"
echo "collected $RUN into docs/results/$RUN"

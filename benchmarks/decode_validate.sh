#!/usr/bin/env bash
# The validation BLEU of a finished run's exported model under other decode settings (issue 37 item 4:
# decoding, like the recipe, is chosen on the validation set only). The run's own evaluate stage
# (`src/evaluate.py`, its params.yaml) on the validation split, beam search as configured plus the
# given decode.* overrides; no robustness curve, no heatmaps, no MLflow run.
#
#   bash benchmarks/decode_validate.sh RUN decode.length_penalty=1.4 [decode.beam_size=8 ...]
#
# Writes RUNS_DIR/RUN/reports/validate-decode-<settings>/ (metrics.json, eval/: report, translations),
# e.g. reports/validate-decode-length_penalty-1.4/; benchmarks/collect_run.sh copies them with the run.
set -euo pipefail
RUN=${1:?usage: decode_validate.sh RUN decode.KEY=VALUE ...}
shift
[ $# -gt 0 ] || { echo "error: no decode.* override given" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SRC=${RUNS_DIR:-$(dirname "$ROOT")/runs}/$RUN
grep -q '^== .* end: rc 0,' "$SRC/run.log" 2>/dev/null \
    || { echo "error: $SRC/run.log shows no finished run (rc 0)" >&2; exit 2; }
name=validate-decode
for override in "$@"; do
    case $override in
        decode.*=*) key=${override%%=*} value=${override#*=}; name+="-${key#decode.}-$value" ;;
        *) echo "error: $override: expected a decode.KEY=VALUE override" >&2; exit 2 ;;
    esac
done
cd "$SRC"
export PATH="$ROOT/.venv/bin:$PATH" PYTHONPATH="$SRC/src" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
export S2S_MIRROR="${S2S_MIRROR:-$(dirname "$ROOT")/shared/data/multi30k}"
nice -n 19 python src/evaluate.py --config-dir . --config-name params evaluate.split=valid \
    'evaluate.robustness_levels=[0.0]' evaluate.heatmaps=0 logger.name=none "$@" \
    "paths.reports_dir=reports/$name" > "reports/$name.log" 2>&1 \
    || { echo "error: decoding failed: $SRC/reports/$name.log" >&2; exit 1; }
python -c "import json,sys; r=json.load(open(sys.argv[1])); print(sys.argv[2], sys.argv[3], 'BLEU', r['bleu'], 'chrF', r['chrf'])" \
    "reports/$name/metrics.json" "$RUN" "${*}"

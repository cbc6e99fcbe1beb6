#!/usr/bin/env bash
# Readouts on SmolLM2-135M (issue 21, item 5): the demo's data and head budget with the readout as the axis, an
# untimed sweep (entropy and gate exits x 4 targets per readout), then the readouts' gate points timed together in one
# seeded schedule against transformers greedy (lazy and dssd at two targets), with the per-part time breakdown.
#
#   EEBENCH_CACHE=<cache> bash benchmarks/readout_study.sh [sweep dir] [results json]
#
# Heads, traces and scores are cached: a second run only re-times. Untimed points do not need a quiet machine; the
# timed schedule does (its JSON records the load average).
set -euo pipefail
PY=${PY:-.venv/bin/python}
SWEEP=${1:-outputs/sweeps/readout-study}
OUT=${2:-benchmarks/results/$(date +%F)_readout_study_smollm2.json}
TARGETS=threshold=0.6,0.8,0.9,0.95

$PY run.py -m experiment=demo hydra.sweep.dir="$SWEEP" $TARGETS readout.options.k=2048,8192
$PY run.py -m experiment=demo hydra.sweep.dir="$SWEEP" $TARGETS readout=full
$PY run.py -m experiment=demo hydra.sweep.dir="$SWEEP" $TARGETS readout=full head=low_rank
$PY -m eebench.cli report "$SWEEP" --out "$SWEEP/report"

# One gate point per readout (any target: the heads and trace are the same, the benchmark calibrates each target).
point() { ls -d "$SWEEP"/"confidence=gate,experiment=demo,$1,threshold=0.9_"* | head -1; }
PYTHONPATH=$PWD $PY benchmarks/engine_speed.py --run-dir "$(point readout.options.k=8192)" \
  --more-run-dirs "$(point readout.options.k=2048)" "$(point head=low_rank,readout=full)" "$(point readout=full)" \
  --metric gate --targets 0.6 0.9 --strategies lazy dssd --baselines --no-no-exit-rows \
  --prompts 2 --prompt-tokens 64 --new-tokens 24 --warmup 1 --repeats 5 --out "$OUT"

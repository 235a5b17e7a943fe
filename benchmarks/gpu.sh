#!/usr/bin/env bash
# Every GPU check in one run, each step under a hard limit (a hung CUDA process ignores SIGTERM).
#   bash benchmarks/gpu.sh DATA_DIR [OUT_DIR]
# On a lent machine with the device kit:  source .carry/setup.sh && bash benchmarks/gpu.sh .carry/data $OUT
# Prints: graphed vs eager epochs and same-card resume (gpu_check.py); the benchmark on the GPU
# (peaks with sync, report-style pipeline on the same card); the paper grid end to end with
# its report (4 x 0.25 GPU); one trial alone at h=512; the four widths one after another.
# EPOCHS=2 shortens the three sweeps (a rehearsal on a CPU; the paper grid's own 400 otherwise).
set -uo pipefail
DATA=${1:?usage: bash benchmarks/gpu.sh DATA_DIR [OUT_DIR]}
OUT=${2:-gpu-results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
PAPER_EPOCHS=${EPOCHS:+--epochs $EPOCHS} SHORT_EPOCHS="--epochs ${EPOCHS:-100}"
export TUNE_AE_NO_DOWNLOAD=1 RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}

step() {  # step NAME LIMIT_S COMMAND...: run, time, keep the output, never hang
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s%N)
  timeout -s KILL "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? t1=$(date +%s%N)
  local tenths=$(( (t1 - t0) / 100000000 ))  # bash integers: the GPU machine has no bc
  printf '== %s: exit %s, %d.%d s wall\n' "$name" "$rc" $((tenths / 10)) $((tenths % 10))
  tail -n "${TAIL:-12}" "$OUT/$name.log"
}
epoch_ms() {  # median epoch time (ms) per hidden size of an experiment
  $PY -c "import sys; from tune_ae import results; e = results.load_table(sys.argv[1], 'epochs'); \
print((e.groupby('hidden')['epoch_time_s'].median() * 1e3).round(1).to_string())" "$1"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
step check 150 $PY benchmarks/gpu_check.py --data-dir "$DATA"
step bench 150 $PY -m tune_ae.bench --data-dir "$DATA" --epochs 3 --no-ray --json "$OUT/bench.json"
TAIL=3 step paper 150 $PY -m tune_ae.run --grid paper $PAPER_EPOCHS --data-dir "$DATA" --storage-path "$PWD/$OUT" --name paper
epoch_ms "$OUT/paper"
TAIL=3 step alone-512 60 $PY -m tune_ae.run --grid paper --hidden 512 $SHORT_EPOCHS --data-dir "$DATA" \
    --storage-path "$PWD/$OUT" --name alone --no-report
epoch_ms "$OUT/alone"
TAIL=3 step one-after-another 120 $PY -m tune_ae.run --grid paper $SHORT_EPOCHS --gpus-per-trial 1 --data-dir "$DATA" \
    --storage-path "$PWD/$OUT" --name serial --no-report
epoch_ms "$OUT/serial"

#!/usr/bin/env bash
# Every GPU check in one run, each step under a hard limit (a hung CUDA process ignores SIGTERM),
# all of them within BUDGET_S seconds (default 480: a device call's limit is 600, the kit's setup comes first).
#   bash benchmarks/gpu.sh DATA_DIR [OUT_DIR]
# On a lent machine with the device kit (what comes back: OUT_DIR.tar.gz, logs and tables without checkpoints):
#   source .carry/setup.sh && bash benchmarks/gpu.sh .carry/data /tmp/gpu; cp /tmp/gpu.tar.gz $OUT/
# Steps, most wanted first (a step with too little of the budget left is skipped, and says so):
#   check       graphed vs eager epochs, a resume on the same card (gpu_check.py)
#   paper       the paper grid end to end with its report (4 x 0.25 GPU)
#   alone-512   one trial alone at h = 512
#   bench       the benchmark on the GPU (peaks with sync, the report-style pipeline on the same card)
#   serial      the four widths one after another at 1.0 GPU (against paper's 4 x 0.25)
#   paper-mps   the paper grid with its four processes as clients of NVIDIA's MPS (where the machine has it)
#   one-process the four widths in four processes against one process (one_process.py)
#   cores       the CPU-only paper grid at 40 epochs, auto against 1 CPU per trial (cores.py)
# EPOCHS=2 shortens every sweep (a rehearsal on a CPU; the paper grid's own 400 otherwise).
# STEPS="paper alone-512" runs only the steps named (e.g. a second call after a fix).
set -uo pipefail
DATA=${1:?usage: bash benchmarks/gpu.sh DATA_DIR [OUT_DIR]}
mkdir -p "${2:-gpu-results}" && OUT=$(cd "${2:-gpu-results}" && pwd)  # absolute: the sweeps' storage path
PY=${PYTHON:-python3}
PAPER_EPOCHS=${EPOCHS:+--epochs $EPOCHS} SHORT=${EPOCHS:-100}
export TUNE_AE_NO_DOWNLOAD=1 RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled} PYTHONUNBUFFERED=1  # a killed step keeps its lines
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-480} ))

wanted() { [ -z "${STEPS:-}" ] || [[ " $STEPS " == *" $1 "* ]]; }
step() {  # step NAME LIMIT_S COMMAND...: run, time, keep the output, never hang, never pass the deadline
  local name=$1 limit=$2; shift 2
  wanted "$name" || return 0
  local left=$(left)
  (( left < limit )) && limit=$left
  if (( limit < 20 )); then printf '== %s: skipped, %d s of the budget left\n' "$name" "$left"; return; fi
  local t0=$(date +%s%N)
  timeout -s KILL "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$? t1=$(date +%s%N)
  local tenths=$(( (t1 - t0) / 100000000 ))  # bash integers: the GPU machine has no bc
  printf '== %s: exit %s, %d.%d s wall (limit %d s)\n' "$name" "$rc" $((tenths / 10)) $((tenths % 10)) "$limit"
  tail -n "${TAIL:-12}" "$OUT/$name.log"
  # A killed step's Ray (started in its own sessions) would hold the card and cores for the next.
  (( rc == 137 )) && pkill -9 -f 'ray/core/src/ray|ray/_private/|ray/dashboard/|ray::' 2>/dev/null
  return 0
}
left() { local s=$(( DEADLINE - $(date +%s) )); echo $(( s < 0 ? 0 : s )); }  # seconds of the budget left
epoch_ms() {  # median epoch time (ms) per hidden size of an experiment
  [ -d "$1" ] && (( $(left) > 20 )) || return 0
  timeout -s KILL 15 $PY -c "import sys; from tune_ae import results; e = results.load_table(sys.argv[1], 'epochs'); \
print((e.groupby('hidden')['epoch_time_s'].median() * 1e3).round(1).to_string())" "$1"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c 'import ray, torch; print("python", __import__("sys").version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "ray", ray.__version__)'
nproc
step check 90 $PY benchmarks/gpu_check.py --data-dir "$DATA"
TAIL=4 step paper 150 $PY -m tune_ae.run --grid paper $PAPER_EPOCHS --data-dir "$DATA" --storage-path "$OUT" --name paper
epoch_ms "$OUT/paper"
TAIL=3 step alone-512 60 $PY -m tune_ae.run --grid paper --hidden 512 --epochs "$SHORT" --data-dir "$DATA" \
    --storage-path "$OUT" --name alone --no-report
epoch_ms "$OUT/alone"
step bench 120 $PY -m tune_ae.bench --data-dir "$DATA" --epochs 3 --no-ray --json "$OUT/bench.json"
TAIL=3 step serial 120 $PY -m tune_ae.run --grid paper --epochs "$SHORT" --gpus-per-trial 1 --data-dir "$DATA" \
    --storage-path "$OUT" --name serial --no-report
epoch_ms "$OUT/serial"
if wanted paper-mps && command -v nvidia-cuda-mps-control > /dev/null && (( $(left) > 60 )); then  # the paper grid again, its four processes as MPS clients
  export CUDA_MPS_PIPE_DIRECTORY=/tmp/mps-pipe CUDA_MPS_LOG_DIRECTORY=/tmp/mps-log
  mkdir -p $CUDA_MPS_PIPE_DIRECTORY $CUDA_MPS_LOG_DIRECTORY
  if timeout -s KILL 10 nvidia-cuda-mps-control -d; then
    TAIL=3 step paper-mps 120 $PY -m tune_ae.run --grid paper $PAPER_EPOCHS --data-dir "$DATA" --storage-path "$OUT" \
        --name paper-mps --no-report
    epoch_ms "$OUT/paper-mps"
    echo quit | timeout -s KILL 10 nvidia-cuda-mps-control
  else
    echo "== paper-mps: the MPS daemon did not start"
  fi
  unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY  # later steps must not look for a daemon that is gone
fi
step one-process 90 $PY benchmarks/one_process.py --data-dir "$DATA" --epochs "$SHORT"
TAIL=8 CUDA_VISIBLE_DEVICES= step cores 240 $PY benchmarks/cores.py --data-dir "$DATA" --sweeps paper --paper-epochs "${EPOCHS:-40}"
echo "== done, $(left) s of the budget left"
# One archive of the logs and tables beside OUT_DIR (a device call returns 8 files at most; checkpoints stay).
tar -czf "$OUT.tar.gz" --exclude='checkpoint_*' --exclude='*.pt' -C "$(dirname "$OUT")" "$(basename "$OUT")" \
  && echo "== packed: $OUT.tar.gz ($(du -h "$OUT.tar.gz" | cut -f1))"

#!/usr/bin/env bash
# GPU check, for a machine with CUDA: the benchmark on the GPU (baseline for a few epochs),
# then the whole paper grid with four trials sharing the card (0.25 GPU each), end to end.
#   bash benchmarks/gpu.sh DATA_DIR [OUT_DIR]
set -euo pipefail
DATA=${1:?usage: bash benchmarks/gpu.sh DATA_DIR [OUT_DIR]}
OUT=${2:-gpu-results}
mkdir -p "$OUT"
python -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.cuda.get_device_name())'
python -m tune_ae.bench --data-dir "$DATA" --epochs 3 --no-ray --json "$OUT/bench.json" | tee "$OUT/bench.txt"
start=$(date +%s.%N)
python -m tune_ae.run --grid paper --gpus-per-trial 0.25 --cpus-per-trial 1 --data-dir "$DATA" \
    --storage-path "$PWD/$OUT" --name paper-gpu --no-report | tail -8 | tee "$OUT/paper.txt"
echo "paper grid end to end: $(echo "$(date +%s.%N) - $start" | bc) s wall" | tee -a "$OUT/paper.txt"

#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py) on a lent GPU: nothing but torch and torchvision needed; under 8 minutes.
# Writes $OUT/gpu_check.json when the device tool's $OUT is set, else results/gpu/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
python3 -m bench.gpu_check "${OUT:-results/gpu}/gpu_check.json" "$@"

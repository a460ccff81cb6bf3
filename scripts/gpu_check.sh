#!/usr/bin/env bash
# The prepared GPU check (rewriting_lab/gpu_check.py): the plugins' contracts on CUDA, the CPU
# against the GPU, and the GPU's figures, merged into docs/bench.json under "device"; at most
# 5 minutes on one GPU. `--cpu`: the same at small sizes on the CPU (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
exec python -m rewriting_lab.gpu_check "$@"

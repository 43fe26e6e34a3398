#!/usr/bin/env bash
# The GPU check, one script for an NVIDIA H100/H200 (under 8 minutes): host-to-device bandwidth, the tiny matrix
# (every family x every strategy, built on the device and built in host memory), then FLUX.1-dev and LTX-Video 2B
# at full scale in bf16 (each first resident alone and beside copies without pause), with every core strategy and
# every peer, a resident-units sweep and parity, and last FLUX.1-dev built in host memory under a 12 GB budget. Report files land in the folder given ($1).
#   bash benchmarks/gpu_check.sh OUTDIR [--budget-s 400] [--steps 4] [--repeats 2] [--only family:label,...]
# Set HARNESS_GIT_SHA=<commit> where the machine's copy of .git may be stale.
# On a CPU, the same logic at tiny scale: bash benchmarks/gpu_check.sh OUTDIR --device cpu --scale tiny
set -euo pipefail
out=${1:?usage: gpu_check.sh OUTDIR [gpu_bench options]}
shift
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$out"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,pcie.link.gen.current,pcie.link.width.current \
    --format=csv 2>/dev/null || true
  python3 -m benchmarks.gpu_bench --out "$out" "$@"
} 2>&1 | tee "$out/console.txt"

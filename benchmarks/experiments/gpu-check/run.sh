#!/usr/bin/env bash
# Runs each GPU path (bf16, AMP, gradient checkpointing, QLoRA 4-bit, 2-process NCCL) for a few
# training steps and one evaluation on ml-100k, from the repository root, on a GPU machine:
#   bash benchmarks/experiments/gpu-check/run.sh
# A few minutes on one GPU. Writes results/gpu_check.{json,md}.
set -euo pipefail
here=benchmarks/experiments/gpu-check
python benchmarks/gpu_check.py --dataset ml-100k --steps 20 --out $here/results

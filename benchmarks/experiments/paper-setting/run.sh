#!/usr/bin/env bash
# The paper's setting on one GPU: all of ml-100k and amazon-games, uni9, baselines to early
# stopping, InstructRec for one full epoch, from the repository root, on a GPU machine:
#   bash benchmarks/experiments/paper-setting/run.sh
# Writes results/bench-<tag>-<dataset>.* with the stored candidates beside them.
set -euo pipefail
here=benchmarks/experiments/paper-setting
python benchmarks/paper_setting.py --amazon-path ../shared/datasets --out $here/results

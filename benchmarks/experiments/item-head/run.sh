#!/usr/bin/env bash
# Regenerates every result of this experiment (about 2 h on 2 cores), from the repository root:
#   bash benchmarks/experiments/item-head/run.sh
set -euo pipefail
here=benchmarks/experiments/item-head
out=$here/results
# 1. SASRec, trained to early stopping on validation: the reference, and the item embeddings
#    that the SASRec hybrid reads.
instructrec bench --datasets ml-100k --models SASRec \
  --model-config SASRec=$here/configs/sasrec.yaml --out $out --tag ml-100k-uni9-sasrec
